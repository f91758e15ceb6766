"""The vendor adapter interface: what the sync pipeline needs from any vendor API.

An adapter is built from a connection's settings (base URL) and decrypted key, talks to the vendor
over HTTP, and hands back plain records; it never touches the database. Errors are raised as
`reconcile.core.errors` exceptions whose message a person can read on the connection page.
"""

import datetime
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class ServiceUsage:
    """Usage of one vendor service (subscription level or add-on) by one account."""

    code: str
    name: str
    active_users: int | None  # billable: excluded users already taken off
    seats: int | None
    excluded_users: int | None = None  # None: the adapter cannot see single users


@dataclass
class AccountRecord:
    external_id: str
    name: str
    domain: str = ""
    status: str = "active"  # active | archived
    billing_type: str = ""
    seats: int | None = None
    # Billable active users: the vendor's count minus `excluded_users` (users matching one of
    # the account's UserExclusion patterns); None where the adapter cannot see single users.
    active_users: int | None = None
    excluded_users: int | None = None
    subscription_level: str = ""
    subscription_end_date: datetime.date | None = None
    raw: dict = field(default_factory=dict)
    usage: list[ServiceUsage] = field(default_factory=list)


@dataclass
class AccountPage:
    accounts: list[AccountRecord]
    number: int
    total_pages: int
    total_count: int | None = None

    @property
    def items(self) -> list[AccountRecord]:
        """What the import engine reads of any page (reconcile.core.imports)."""
        return self.accounts


@dataclass
class ConnectionCheck:
    """The answer to "does this credential work?", in words a person understands."""

    message: str
    latency_ms: int
    api_schema: str = ""
    account_count: int | None = None

    @property
    def settings(self) -> dict:
        """What the test learnt that the connection keeps (the API schema detected)."""
        return {"api_schema": self.api_schema} if self.api_schema else {}


class VendorAdapter(ABC):
    kind: str
    # Requests in flight at once (pages after the first) unless the connection's settings
    # say `concurrency`; KnowBe4 publishes no limit for its partner API.
    default_concurrency: int = 4

    def __init__(self, *, base_url: str, credential: str, api_schema: str = ""):
        self.base_url = base_url
        self.credential = credential
        self.api_schema = api_schema
        self.concurrency = self.default_concurrency

    @classmethod
    def for_store(cls, settings: dict, secrets: dict) -> "VendorAdapter":
        """Built from a connection's stored (or about to be stored) settings and secrets."""
        adapter = cls(
            base_url=settings.get("base_url", ""),
            credential=secrets.get("api_key", ""),
            api_schema=settings.get("api_schema", ""),
        )
        adapter.concurrency = int(settings.get("concurrency") or cls.default_concurrency)
        return adapter

    @classmethod
    def for_connection(cls, connection) -> "VendorAdapter":
        """`connection.adapter()`: built from what the connection stores."""
        return cls.for_store(connection.settings, connection.secrets())

    def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """Release the adapter's HTTP clients (adapters that keep one override this)."""

    @abstractmethod
    def test(self) -> ConnectionCheck:
        """The cheapest authenticated call; raises ExternalAPIError when it fails."""

    @abstractmethod
    def iter_account_pages(self) -> Iterator[AccountPage]:
        """Every customer account with its services and usage, one API page at a time."""
