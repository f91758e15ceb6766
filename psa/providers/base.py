"""The PSA adapter interface: what TrueUp needs from any PSA, in plain Python.

An adapter is built from a connection's settings (non-secret: site URL, codebase, zone URL…)
and its decrypted secrets, talks to the PSA over HTTP through `reconcile.core.http`, and hands back
plain records; it never touches the database. Every failure is a `reconcile.core.errors` exception
whose message names what was wrong ("ConnectWise rejected the keys", "no such codebase").

Reads page by page (`Page`), so the import can stage each page as it arrives. Writes are
split so the service layer (psa.services.set_quantity) can make them idempotent: it reads
the line at the effective date (`read_line`), sends only what is still missing
(`write_quantity`, which for a PSA that takes deltas sends `quantity - current`), then reads
the line back to prove the PSA took it.
"""

import datetime
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Generic, TypeVar

from pyrate_limiter import Rate

from reconcile.core import http

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    number: int
    total_pages: int | None = None  # None when the API does not say


@dataclass
class ConnectionCheck:
    message: str  # e.g. "ConnectWise accepted the keys (company demomsp, 173 companies)."
    latency_ms: int
    settings: dict = field(default_factory=dict)  # discovered settings to keep (codebase, zone)


@dataclass
class ContainerType:
    """An agreement type (ConnectWise), contract type (Autotask) or invoice type (Halo)."""

    external_id: str
    name: str


@dataclass
class CompanyRecord:
    external_id: str
    name: str
    identifier: str = ""  # CW company identifier, Autotask companyNumber, Halo reference
    active: bool = True
    raw: dict = field(default_factory=dict)


@dataclass
class ProductRecord:
    external_id: str
    identifier: str  # the PSA's own "Product ID" (CW catalog identifier, Halo reference…)
    name: str
    description: str = ""
    unit_price: Decimal | None = None
    unit_cost: Decimal | None = None
    active: bool = True
    raw: dict = field(default_factory=dict)


@dataclass
class ContainerRecord:
    """A recurring billing container: CW agreement, Autotask contract, Halo recurring invoice."""

    external_id: str
    company_external_id: str
    kind: str  # "agreement" | "contract" | "recurring_invoice"
    type_name: str = ""
    name: str = ""
    status: str = ""
    start_date: datetime.date | None = None
    end_date: datetime.date | None = None
    raw: dict = field(default_factory=dict)


@dataclass
class LineRecord:
    """One billable seat line on a recurring container."""

    external_id: str
    container: ContainerRecord
    product_external_id: str | None
    product_identifier: str = ""
    description: str = ""
    quantity: Decimal = Decimal(0)
    included_quantity: Decimal = Decimal(0)  # CW lessIncluded; 0 where the PSA has none
    unit_price: Decimal | None = None
    effective_date: datetime.date | None = None
    cancelled_date: datetime.date | None = None
    # Why TrueUp must not push this line (e.g. "Halo calculates this quantity from users").
    read_only_reason: str = ""
    raw: dict = field(default_factory=dict)


@dataclass
class LineKey:
    """What an adapter needs to find a stored line again: ids plus the raw record it sent."""

    container_id: str
    line_id: str
    raw: dict = field(default_factory=dict)


@dataclass
class WriteAnswer:
    status_code: int
    body: str  # an excerpt of the PSA's answer, for the push ledger


class PSAAdapter(ABC):
    kind: str
    label: str
    # Autotask changes units with adjustments by a delta; the others set the quantity.
    delta_writes: bool = False
    # Autotask takes whole units only.
    whole_units: bool = False
    # The request budget TrueUp keeps to when the connection sets none (`requests_per_minute`
    # in its settings); None: no pacing, only back-off when the PSA answers 429.
    default_rates: list[Rate] | None = None
    # Requests TrueUp has in flight at once when the connection sets none (`concurrency` in
    # its settings): independent requests (pages after the first, per-container lines,
    # pushes to distinct lines) go out together, within the request budget.
    default_concurrency: int = 4

    def __init__(self, *, settings: dict, secrets: dict):
        self.settings = settings
        self.secrets = secrets
        requests = settings.get("requests_per_minute")
        self.limiter = http.pace(http.per_minute(int(requests)) if requests else self.default_rates)
        self.concurrency = int(settings.get("concurrency") or self.default_concurrency)
        self.slots = threading.BoundedSemaphore(self.concurrency)  # shared by its OutsideAPIs

    @classmethod
    def for_store(cls, settings: dict, secrets: dict) -> "PSAAdapter":
        """Built from a connection's stored (or about to be stored) settings and secrets."""
        return cls(settings=settings, secrets=secrets)

    @classmethod
    def for_connection(cls, connection) -> "PSAAdapter":
        """`connection.adapter()`: built from what the connection stores."""
        return cls.for_store(connection.settings, connection.secrets())

    def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """Release the adapter's HTTP clients (adapters that keep one override this)."""

    @abstractmethod
    def test(self) -> ConnectionCheck:
        """The cheapest authenticated call; raises a reconcile.core.errors exception on failure."""

    @abstractmethod
    def container_types(self) -> list[ContainerType]:
        """The agreement/contract types a person chooses to import when connecting."""

    @abstractmethod
    def iter_companies(self) -> Iterator[Page[CompanyRecord]]:
        """Customer companies."""

    @abstractmethod
    def iter_products(self) -> Iterator[Page[ProductRecord]]:
        """The catalogue."""

    @abstractmethod
    def iter_billing_lines(self, container_type_ids: list[str]) -> Iterator[Page[LineRecord]]:
        """Seat lines of the recurring containers of the chosen types (all types if empty)."""

    @abstractmethod
    def read_line(self, key: LineKey, on: datetime.date | None = None) -> LineRecord:
        """The line as the PSA bills it on `on` (default today). Only PSAs whose quantity
        changes by period (Autotask's units from an adjustment's effective date) use `on`;
        the service reads at the push's effective date so a retry sees an earlier push."""

    @abstractmethod
    def write_quantity(
        self, key: LineKey, current: Decimal, quantity: Decimal, effective_date: datetime.date
    ) -> WriteAnswer:
        """Send one quantity change; raises WriteRejected when the PSA refuses it."""
