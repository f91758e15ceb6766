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
from integrations.knowbe4.client import GraphQLClient
from reconcile.errors import BadAnswer

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
    """Seat numbers are typed String in the 2023 schema, and may be null or junk."""
    if value is None or value == "":
        return None
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
        total = result["accounts"]["pagination"]["totalCount"]
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
            page = 1
            try:
                while True:
                    result = api.execute(query, {"per": self.per, "page": page})
                    accounts = result["accounts"]
                    pagination = accounts["pagination"]
                    yield AccountPage(
                        accounts=[self._record(node, generation) for node in accounts["nodes"]],
                        number=pagination["page"],
                        total_pages=pagination["pages"],
                        total_count=pagination["totalCount"],
                    )
                    if pagination["page"] >= pagination["pages"] or not accounts["nodes"]:
                        break
                    page += 1
            finally:
                self.requests += api.requests
                self.http_seconds += api.http_seconds

    def _record(self, node: dict, generation: str) -> AccountRecord:
        if not isinstance(node, dict) or node.get("id") is None:
            raise BadAnswer("KnowBe4 returned an account without an id.")
        seats_field, users_field = SCHEMA_FIELDS[generation]
        seats = to_int(node.get(seats_field))
        users = to_int(node.get(users_field))
        subscription = node.get("subscriptionObject") or {}
        level = subscription.get("subscriptionLevel") or subscription.get("friendlyName") or ""
        usage = []
        if level:
            usage.append(ServiceUsage(service_code(level), f"KnowBe4 SAT {level}", users, seats))
        for sku in node.get("purchasedSkus") or []:
            if (
                sku
                and sku.get("skuCode")
                and sku.get("status") == "paid"
                and sku.get("active", True)
            ):
                usage.append(
                    ServiceUsage(
                        "sku-" + sku["skuCode"].lower(),
                        sku.get("title") or sku["skuCode"],
                        users,
                        None,
                    )
                )
        name = (node.get("companyName") or node.get("displayName") or "").strip()
        return AccountRecord(
            external_id=str(node["id"]),
            name=name or f"KnowBe4 account {node['id']}",
            domain=node.get("domain") or "",
            status="archived" if node.get("archived") else "active",
            billing_type=(node.get("billingType") or "").lower(),
            seats=seats,
            active_users=users,
            subscription_level=level,
            subscription_end_date=to_date(node.get("subscriptionEndDate")),
            raw=node,
            usage=usage,
        )
