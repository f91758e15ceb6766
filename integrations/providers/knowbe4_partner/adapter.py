"""KnowBe4 Partner API adapter: every customer account of a partner, with seats and users.

KnowBe4 renamed the account count fields over time (`numberOfSeats: String` / `userCount` in
the 2023 schema, `numberOfAllSeats` / `allUserCount` later; ../shared/research/knowbe4-api.md
1.3). The adapter introspects the schema once per session, selects whichever generation the API
speaks, records it on the connection (`api_schema`), and selects optional fields only where
they exist, so a query never fails validation.

Services: the partner API has no price list, so a service is what the account's subscription
is (`KnowBe4 SAT Diamond`, from `subscriptionObject.subscriptionLevel`) plus each paid add-on
SKU in `purchasedSkus` where the API exposes it. Every service of an account is used by the
account's active users; archived users never count (`archivedUsers: false`).
"""

import datetime
import time
from collections.abc import Iterator

from django.conf import settings

from integrations.adapters import (
    AccountPage,
    AccountRecord,
    ConnectionCheck,
    ServiceUsage,
    VendorAdapter,
)
from integrations.providers.knowbe4_partner.client import GraphQLClient
from reconcile.core.errors import BadAnswer
from reconcile.core.fields import excerpt, record_id, record_name, text
from reconcile.core.parallel import in_parallel

SCHEMA_FIELDS = {
    # generation: (seats field, active users field)
    "current": ("numberOfAllSeats", "allUserCount"),
    "2023": ("numberOfSeats", "userCount"),
}
OPTIONAL_FIELDS = [
    "displayName",
    "domain",
    "archived",
    "billingType",
    "subscriptionEndDate",
    "createdAt",
    "subscriptionObject { id friendlyName subscriptionLevel }",
    "purchasedSkus { skuCode title status active }",
]


def service_code(level: str) -> str:
    return "sat-" + level.strip().lower().replace(" ", "-")


def to_int(value) -> int | None:
    """Seat numbers are typed String in the 2023 schema, and may be null or junk text (None);
    an object, a list or a boolean is no count at all: a malformed answer."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadAnswer(f"KnowBe4 sent {excerpt(value)} where a number of seats or users belongs.")
    try:
        return int(float(str(value).strip()))
    except ValueError:
        return None


def to_date(value) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


class PartnerAdapter(VendorAdapter):
    kind = "knowbe4_partner"

    def __init__(self, *, base_url: str, credential: str, api_schema: str = "", per: int = 0):
        super().__init__(base_url=base_url, credential=credential, api_schema=api_schema)
        self.per = per or settings.KNOWBE4_PAGE_SIZE
        self.requests = 0
        self.http_seconds = 0.0

    def _session(self) -> GraphQLClient:
        return GraphQLClient(self.base_url, self.credential)

    def _detect_schema(self, api: GraphQLClient) -> str:
        for generation, fields in SCHEMA_FIELDS.items():
            if all(api.has_field("Account", name) for name in fields):
                return generation
        raise BadAnswer(
            "KnowBe4's API at this address has no account seat and user count fields; "
            "it may not be the Partner API."
        )

    def _accounts_query(self, api: GraphQLClient, generation: str) -> str:
        seats, users = SCHEMA_FIELDS[generation]
        fields = ["id", "companyName", seats, users]
        for field in OPTIONAL_FIELDS:
            if api.has_field("Account", field.split(" ", 1)[0]):
                fields.append(field)
        arguments = "per: $per, page: $page, archivedUsers: false"
        if "status" in api.schema.query_type.fields["accounts"].args:
            arguments += ", status: ALL"
        return (
            "query PartnerAccounts($per: Int, $page: Int) {\n"
            f"  accounts({arguments}) {{\n"
            f"    nodes {{ {' '.join(fields)} }}\n"
            "    pagination { page pages per totalCount }\n"
            "  }\n"
            "}"
        )

    def test(self) -> ConnectionCheck:
        started = time.monotonic()
        with self._session() as api:
            generation = self._detect_schema(api)
            result = api.execute(
                "query Check { accounts(per: 25, page: 1) { pagination { totalCount } } }"
            )
        self.api_schema = generation
        accounts = result.get("accounts") if isinstance(result, dict) else None
        pagination = accounts.get("pagination") if isinstance(accounts, dict) else None
        total = pagination.get("totalCount") if isinstance(pagination, dict) else None
        if not isinstance(total, int) or isinstance(total, bool):
            raise BadAnswer(f"KnowBe4 answered the count of accounts with {excerpt(total)}.")
        latency = int((time.monotonic() - started) * 1000)
        return ConnectionCheck(
            message=f"KnowBe4 accepted the key: {total} customer accounts visible.",
            latency_ms=latency,
            api_schema=generation,
            account_count=total,
        )

    def iter_account_pages(self) -> Iterator[AccountPage]:
        with self._session() as api:
            generation = self._detect_schema(api)
            self.api_schema = generation
            query = self._accounts_query(api, generation)

            def fetch(page: int) -> AccountPage:
                nodes, pagination = _accounts_page(
                    api.execute(query, {"per": self.per, "page": page}), page
                )
                return AccountPage(
                    accounts=[self._record(node, generation) for node in nodes],
                    number=pagination["page"],
                    total_pages=pagination["pages"],
                    total_count=pagination["totalCount"],
                )

            try:
                # Page 1 says how many there are; the others are asked for at once.
                first = fetch(1)
                yield first
                if first.accounts and first.total_pages > 1:
                    pages = range(2, first.total_pages + 1)
                    for page in in_parallel(fetch, pages, self.concurrency):
                        yield page
                        if not page.accounts:
                            break
            finally:
                self.requests += api.requests
                self.http_seconds += api.http_seconds

    def _record(self, node: dict, generation: str) -> AccountRecord:
        if not isinstance(node, dict):
            raise BadAnswer(f"KnowBe4 returned an account that is no object: {excerpt(node)}.")
        external_id = record_id(node.get("id"), "KnowBe4 returned an account")
        # companyName may be null (the schema allows it); displayName never is.
        company, display = node.get("companyName"), node.get("displayName")
        blank = company is None or (isinstance(company, str) and not company.strip())
        name = record_name(
            display if blank else company, f"KnowBe4 account {external_id}", "KnowBe4"
        )
        seats_field, users_field = SCHEMA_FIELDS[generation]
        seats = to_int(node.get(seats_field))
        users = to_int(node.get(users_field))
        subscription = node.get("subscriptionObject")
        subscription = subscription if isinstance(subscription, dict) else {}
        level = text(subscription.get("subscriptionLevel")) or text(
            subscription.get("friendlyName")
        )
        usage = []
        if level:
            usage.append(ServiceUsage(service_code(level), f"KnowBe4 SAT {level}", users, seats))
        skus = node.get("purchasedSkus")
        for sku in skus if isinstance(skus, list) else []:
            if (
                isinstance(sku, dict)
                and text(sku.get("skuCode"))
                and sku.get("status") == "paid"
                and sku.get("active", True)
            ):
                code = text(sku["skuCode"])
                usage.append(
                    ServiceUsage("sku-" + code.lower(), text(sku.get("title")) or code, users, None)
                )
        return AccountRecord(
            external_id=external_id,
            name=name,
            domain=text(node.get("domain")),
            status="archived" if node.get("archived") else "active",
            billing_type=text(node.get("billingType")).lower(),
            seats=seats,
            active_users=users,
            subscription_level=level,
            subscription_end_date=to_date(node.get("subscriptionEndDate")),
            raw=node,
            usage=usage,
        )


def _accounts_page(result, page: int) -> tuple[list, dict]:
    """The nodes and pagination of an `accounts` answer, or a BadAnswer saying what is wrong."""
    accounts = result.get("accounts") if isinstance(result, dict) else None
    if not isinstance(accounts, dict):
        raise BadAnswer(f"KnowBe4 answered accounts page {page} without its accounts.")
    nodes, pagination = accounts.get("nodes"), accounts.get("pagination")
    if not isinstance(nodes, list):
        raise BadAnswer(f"KnowBe4 answered accounts page {page} without a list of accounts.")
    numbers = ("page", "pages", "totalCount")
    if not isinstance(pagination, dict) or not all(
        isinstance(pagination.get(n), int) and not isinstance(pagination.get(n), bool)
        for n in numbers
    ):
        raise BadAnswer(
            f"KnowBe4 answered accounts page {page} without usable page numbers "
            f"(pagination: {excerpt(pagination)})."
        )
    return nodes, pagination
