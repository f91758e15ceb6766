"""Syncro: one API token, `page` paging, the line items of recurring invoice schedules.

Syncro's API lives at `https://{subdomain}.syncromsp.com/api/v1` and takes the token as a Bearer
header; the token carries the permissions chosen for it in Syncro. Lists answer
`{"<key>": [...], "meta": {"total_pages", "total_entries", "per_page", "page"}}`, 25 records a
page. Recurring billing is an invoice schedule (`/schedules`) whose `lines` are its line items;
a line item's `quantity` is a decimal string ("25.0"). A quantity is set with
`PUT /schedules/{id}/line_items/{line item id}`, which answers the saved line item. A line
billed per asset (`asset_type_id`) has its quantity counted by Syncro and is not pushed.

Syncro takes no effective date for a schedule line: the new quantity applies from the next
invoice the schedule raises. Sources and what is inferred: docs/providers/syncro.md.
"""

import datetime
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
from pyrate_limiter import Duration, Rate

from psa.providers.base import (
    CompanyRecord,
    ConnectionCheck,
    ContainerRecord,
    ContainerType,
    LineKey,
    LineRecord,
    Page,
    ProductRecord,
    PSAAdapter,
    WriteAnswer,
)
from reconcile.core import fields
from reconcile.core.errors import BadAnswer, CredentialRejected, ExternalAPIError, WriteRejected
from reconcile.core.fields import plain_json, record_id, record_name, unseen
from reconcile.core.http import OutsideAPI, host_of
from reconcile.core.parallel import numbered_pages

CONTAINER_KIND = "schedule"
SCHEDULES = ContainerType(external_id="schedule", name="Recurring invoice schedules")
PERMISSIONS = (
    "Customers - List/Search, Products - List/Search, Recurring Invoices - List and "
    "Recurring Invoices - Edit"
)


class SyncroAPI(OutsideAPI):
    """What Syncro's answers mean beyond the common rules: its error lists and permissions."""

    name = "Syncro"
    hint = "Check the Syncro address (https://yourname.syncromsp.com)."

    def said(self, response: httpx.Response) -> str:
        """Syncro's words: `{"error": "…"}`, or a list of them under `error` or `message`."""
        try:
            body = response.json()
        except ValueError:
            return ""
        if isinstance(body, dict):
            for name in ("error", "message", "errors"):
                value = body.get(name)
                if isinstance(value, list) and value:
                    return "; ".join(str(v).strip() for v in value)[:300]
        return super().said(response)[:300]

    def rejected(self, response: httpx.Response) -> ExternalAPIError:
        said = self.said(response)
        if response.status_code == 401:
            return CredentialRejected(
                f"{self.where(response)} rejected the API token (HTTP 401)"
                f"{': ' + said.rstrip('.') if said else ''}. Check that the token belongs to "
                "this Syncro account and has not been revoked (Admin → API Tokens)."
            )
        return CredentialRejected(
            f"Syncro's API token lacks a permission (HTTP 403){': ' + said if said else '.'} "
            f"TrueUp needs {PERMISSIONS}."
        )

    def special(self, response: httpx.Response, *, write: bool) -> ExternalAPIError | None:
        if write and response.status_code == 403:
            said = self.said(response)
            return WriteRejected(
                f"Syncro's API token may not change recurring invoices (HTTP 403)"
                f"{': ' + said.rstrip('.') if said else ''}. Give it Recurring Invoices - Edit.",
                response.status_code,
                response.text,
            )
        return None


class SyncroAdapter(PSAAdapter):
    """settings: api_url (…/api/v1); secrets: api_token."""

    # Syncro's ~180 requests a minute per IP are about 3 a second: 3 at once
    # (docs/providers/concurrency.md).
    default_concurrency = 3

    kind = "syncro"
    label = "Syncro"
    default_rates = [Rate(150, Duration.MINUTE)]
    page_size = 25  # fixed by Syncro

    def __init__(self, *, settings: dict, secrets: dict):
        super().__init__(settings=settings, secrets=secrets)
        self.api_url = str(settings.get("api_url", "")).strip().rstrip("/")
        self.api = SyncroAPI(
            limiter=self.limiter,
            slots=self.slots,
            location=host_of(self.api_url),
            headers={"Accept": "application/json"},
        )

    @property
    def requests(self) -> int:
        return self.api.requests

    def close(self) -> None:
        self.api.close()

    # --- interface ---------------------------------------------------------------------------

    def test(self) -> ConnectionCheck:
        started = time.monotonic()
        customers = self._get("customers", {"page": 1, "include_disabled": "true"})
        count = _meta(customers, "customers").get("total_entries")
        # A token may list customers yet not schedules: better to hear it now than at the import.
        self._get("schedules", {"page": 1})
        latency_ms = round((time.monotonic() - started) * 1000)
        counted = f", {count} customers" if isinstance(count, int | Decimal) else ""
        return ConnectionCheck(
            message=f"Syncro accepted the API token ({host_of(self.api_url)}{counted}).",
            latency_ms=latency_ms,
        )

    def container_types(self) -> list[ContainerType]:
        # Schedules have a frequency but no type: every schedule is one kind of container.
        return [SCHEDULES]

    def iter_companies(self) -> Iterator[Page[CompanyRecord]]:
        for page in self._pages("customers", {"include_disabled": "true"}):
            yield Page([_company(c) for c in page.items], page.number, page.total_pages)

    def iter_products(self) -> Iterator[Page[ProductRecord]]:
        for page in self._pages("products", {}):
            yield Page([_product(p) for p in page.items], page.number, page.total_pages)

    def iter_billing_lines(self, container_type_ids: list[str]) -> Iterator[Page[LineRecord]]:
        if container_type_ids and SCHEDULES.external_id not in container_type_ids:
            return
        for page in self._pages("schedules", {}):
            lines = []
            for schedule in page.items:
                container = _container(schedule)
                lines += [_line(line, container) for line in _lines_of(schedule)]
            yield Page(lines, page.number, page.total_pages)

    def read_line(self, key: LineKey, on: datetime.date | None = None) -> LineRecord:
        schedule_id = fields.int_id(key.container_id, "Syncro", "a schedule id")
        url = self._url(f"schedules/{schedule_id}")
        response = self.api.transmit("GET", url, headers=self._auth())
        if response.status_code == 404 and self.api.is_json(response):
            raise BadAnswer(
                f"Syncro has no invoice schedule {schedule_id} any more (HTTP 404): it was "
                "deleted in Syncro."
            )
        if response.status_code >= 300:
            raise self.api.error(response)
        body = self.api.json(response, exact=True)
        schedule = fields.obj(
            body.get("schedule") if isinstance(body, dict) else None,
            "Syncro",
            f"invoice schedule {schedule_id}",
        )
        container = _container(schedule)
        for line in _lines_of(schedule):
            if str(line.get("id")) == str(key.line_id):
                return _line(line, container)
        raise BadAnswer(
            f"Syncro's invoice schedule {schedule_id} has no line item {key.line_id} any more: "
            "it was removed in Syncro."
        )

    def write_quantity(
        self, key: LineKey, current: Decimal, quantity: Decimal, effective_date: datetime.date
    ) -> WriteAnswer:
        reason = _read_only_reason(key.raw) if key.raw else ""
        if reason:
            raise WriteRejected(reason)
        if quantity < 0:
            raise WriteRejected(f"Syncro takes no negative quantity (asked for {quantity}).")
        schedule_id = fields.int_id(key.container_id, "Syncro", "a schedule id")
        line_id = fields.int_id(key.line_id, "Syncro", "a line item id")
        response = self.api.send(
            "PUT",
            self._url(f"schedules/{schedule_id}/line_items/{line_id}"),
            json={"quantity": str(quantity)},
            headers=self._auth(),
            write=True,
        )
        return WriteAnswer(status_code=response.status_code, body=response.text[:2000])

    # --- requests ----------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        if not self.api_url:
            raise BadAnswer("The Syncro address is missing.")
        return f"{self.api_url}/{path}"

    def _auth(self) -> dict:
        return {"Authorization": f"Bearer {str(self.secrets.get('api_token', '')).strip()}"}

    def _get(self, path: str, params: dict):
        response = self.api.send("GET", self._url(path), params=params, headers=self._auth())
        return self.api.json(response, exact=True)

    def _pages(self, resource: str, params: dict) -> Iterator[Page[dict]]:
        """Every record of a list, one `Page` per API page, up to the `meta.total_pages` the
        first page announced; pages after the first are fetched at once."""

        def fetch(number: int) -> tuple[list, int]:
            body = self._get(resource, {**params, "page": number})
            records = body.get(resource) if isinstance(body, dict) else None
            if not isinstance(records, list):
                raise BadAnswer(f"Syncro's {resource} list came without its '{resource}' records.")
            return records, _total_pages(body, resource) if number == 1 else 0

        seen = set()
        for number, last, records in numbered_pages(fetch, self.concurrency):
            yield Page(unseen(records, seen, f"Syncro's {resource} list"), number, last)


# --- records -----------------------------------------------------------------------------------


def _company(customer: dict) -> CompanyRecord:
    external_id = record_id(customer.get("id"), "Syncro answered a customer")
    name = customer.get("business_name") or customer.get("fullname")
    return CompanyRecord(
        external_id=external_id,
        name=record_name(name, f"Syncro customer {external_id}", "Syncro"),
        active=not customer.get("disabled", False),
        raw=plain_json(customer),
    )


def _product(product: dict) -> ProductRecord:
    external_id = record_id(product.get("id"), "Syncro answered a product")
    return ProductRecord(
        external_id=external_id,
        identifier=fields.text(product.get("upc_code")),
        name=record_name(product.get("name"), f"Syncro product {external_id}", "Syncro"),
        description=fields.text(product.get("description")),
        unit_price=fields.number(product.get("price_retail"), "Syncro", "a product's price"),
        unit_cost=fields.number(product.get("price_cost"), "Syncro", "a product's cost"),
        active=not product.get("disabled", False),
        raw=plain_json(product),
    )


def _container(schedule: dict) -> ContainerRecord:
    external_id = record_id(schedule.get("id"), "Syncro answered an invoice schedule")
    customer_id = schedule.get("customer_id")
    return ContainerRecord(
        external_id=external_id,
        company_external_id=""
        if customer_id is None
        else record_id(customer_id, f"Syncro answered schedule {external_id} with a customer"),
        kind=CONTAINER_KIND,
        type_name=SCHEDULES.name,
        name=fields.text(schedule.get("name")),
        status="Paused" if schedule.get("paused") else "Active",
        raw=plain_json({k: v for k, v in schedule.items() if k != "lines"}),
    )


def _lines_of(schedule: dict) -> list[dict]:
    return fields.objects(
        schedule.get("lines"), "Syncro", f"schedule {schedule.get('id')} with lines"
    )


def _line(line: dict, container: ContainerRecord) -> LineRecord:
    external_id = record_id(line.get("id"), "Syncro answered a schedule line item")
    what = f"line item {external_id} of schedule {container.external_id}"
    quantity = fields.number(line.get("quantity"), "Syncro", f"the quantity of {what}")
    if quantity is None:
        raise BadAnswer(f"Syncro answered {what} without its quantity.")
    product_id = line.get("product_id")
    return LineRecord(
        external_id=external_id,
        container=container,
        product_external_id=None
        if product_id in (None, "")
        else record_id(product_id, f"Syncro answered {what} with a product"),
        description=fields.text(line.get("name") or line.get("description")),
        quantity=quantity,
        unit_price=fields.number(line.get("price_retail"), "Syncro", f"the price of {what}"),
        read_only_reason=_read_only_reason(line),
        raw=plain_json(line),
    )


def _read_only_reason(line: dict) -> str:
    if line.get("asset_type_id") not in (None, ""):
        return "Syncro counts this quantity from the customer's assets, so TrueUp cannot set it."
    if line.get("one_time_charge"):
        return "This is a one-time charge on the schedule, not a recurring seat line."
    return ""


def _meta(body, resource: str) -> dict:
    meta = body.get("meta") if isinstance(body, dict) else None
    if not isinstance(meta, dict):
        raise BadAnswer(f"Syncro's {resource} list came without its paging (meta).")
    return meta


def _total_pages(body, resource: str) -> int:
    total = _meta(body, resource).get("total_pages")
    if isinstance(total, bool) or not isinstance(total, int | Decimal) or total < 0:
        raise BadAnswer(f"Syncro's {resource} list came without a number of pages.")
    return int(total)
