"""HaloPSA: OAuth2 client credentials, `pageinate` paging, recurring invoice lines.

Halo has an authorisation server (`…/auth`) that issues Bearer tokens for client credentials and
a resource server (`…/api`). Lists answer `{"record_count", "<key>": [...]}` and page with
`pageinate=true&page_size=&page_no=` (1-based). Seats are the lines (`InvoiceDetail`) of
recurring invoices (`InvoiceHeader`, negative ids); a line's `qty_order` is the quantity unless
`recurring_invoice_quantity_type` is not 0, in which case Halo calculates it (from the client's
users, assets, licences or subscriptions) and refuses a new one.

A quantity is written with `POST /api/RecurringInvoice/updatelines` and a body of just the line
(`[{"id", "ihid", "qty_order"}]`). Posting a whole header instead would replace its line set, so
a line left out would be deleted; this adapter never posts headers.

Halo takes no effective date for a recurring line's quantity: the new quantity applies from the
next invoice Halo raises from the recurring invoice.
"""

import datetime
import math
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from urllib.parse import urlsplit

import httpx

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
from reconcile.core.errors import (
    BadAnswer,
    CredentialRejected,
    ExternalAPIError,
    WriteRejected,
)
from reconcile.core.fields import plain_json, record_id, record_name, unseen
from reconcile.core.http import OutsideAPI, host_of
from reconcile.core.parallel import numbered_pages

DEFAULT_PAGE_SIZE = 100
DEFAULT_SCOPE = "all"
# A cached token is renewed this long before Halo says it expires (at most a tenth of its life).
TOKEN_MARGIN_SECONDS = 60.0
NO_DATE = "1899-12-30"  # Halo's "no date"
CONTAINER_KIND = "recurring_invoice"
RECURRING_INVOICES = ContainerType(external_id="recurring_invoice", name="Recurring invoices")
# The permission area (Halo's scope suffix) each resource needs.
AREAS = {"Client": "customers", "Item": "items", "RecurringInvoice": "invoices"}
CLIENT_FILTERS = {"includeactive": "true", "includeinactive": "true"}
QUANTITY_SOURCES = {1: "users", 2: "assets", 3: "licences", 4: "subscriptions"}


class HaloAPI(OutsideAPI):
    """What Halo's answers mean beyond the common rules: its permission areas on 403."""

    name = "Halo"
    hint = "Check the resource server URL (it ends in /api)."

    def said(self, response: httpx.Response) -> str:
        """Halo's error text: a JSON string, OAuth's error_description, .NET's Message, or the
        one value of a one-key object."""
        said = super().said(response)
        if said:
            return said[:300]
        try:
            body = response.json()
        except ValueError:
            return ""
        if isinstance(body, dict) and len(body) == 1:
            return str(next(iter(body.values()))).strip()[:300]
        return ""

    def rejected(self, response: httpx.Response) -> ExternalAPIError:
        return CredentialRejected(
            f"{self.where(response)} refused the token its authorisation server had just issued "
            "(HTTP 401). Check that the resource server and authorisation server URLs belong "
            "to the same Halo instance (and the tenant, if you set one)."
        )

    def special(self, response: httpx.Response, *, write: bool) -> ExternalAPIError | None:
        if response.status_code != 403:
            return None
        resource = urlsplit(str(response.request.url)).path.split("/api/", 1)[-1].split("/")[0]
        area = AREAS.get(resource, "invoices")
        message = (
            f"Halo's token lacks the {'edit' if write else 'read'}:{area} permission (HTTP 403)."
        )
        if self.said(response):
            message += f" Halo said: {self.said(response)}"
        message += " Add it to the application in Halo, or use the scope 'all'."
        if write:
            return WriteRejected(message, response.status_code, response.text)
        return CredentialRejected(message)


class HaloAdapter(PSAAdapter):
    """settings: resource_server (…/api), auth_server (…/auth), tenant (optional), scope
    ("all" by default), page_size (optional, 100 by default); secrets: client_id, client_secret.
    """

    # Halo publishes no limit: a conservative 4 (docs/providers/concurrency.md).
    default_concurrency = 4

    kind = "halo"
    label = "HaloPSA"

    def __init__(self, *, settings: dict, secrets: dict):
        super().__init__(settings=settings, secrets=secrets)
        self.resource_server = str(settings.get("resource_server", "")).strip().rstrip("/")
        self.auth_server = str(settings.get("auth_server", "")).strip().rstrip("/")
        self.tenant = str(settings.get("tenant") or "").strip()
        self.scope = str(settings.get("scope") or DEFAULT_SCOPE).strip()
        self.page_size = max(int(settings.get("page_size") or DEFAULT_PAGE_SIZE), 1)
        self._token: str | None = None
        self._token_lock = threading.Lock()
        self._token_scope = ""
        self._token_renew_at = 0.0
        self.api = HaloAPI(
            limiter=self.limiter,
            slots=self.slots,
            location=urlsplit(self.resource_server).netloc,
            headers={"Accept": "application/json"},
        )
        self.auth_api = HaloAPI(
            limiter=self.limiter, slots=self.slots, location=urlsplit(self.auth_server).netloc
        )
        self.auth_api.hint = "Check the authorisation server URL (it ends in /auth)."

    # --- interface ---------------------------------------------------------------------------

    def test(self) -> ConnectionCheck:
        started = time.monotonic()
        self._token = None
        body = self._get(
            "Client", {**CLIENT_FILTERS, "pageinate": "true", "page_size": 1, "page_no": 1}
        )
        latency_ms = round((time.monotonic() - started) * 1000)
        count = _record_count(body, "Client")
        where = f"tenant {self.tenant}" if self.tenant else host_of(self.resource_server)
        message = f"Halo accepted the client ID and secret ({where}, {count} clients)."
        granted = set(self._token_scope.split())
        if granted and not granted & {"all", "edit:invoices"}:
            message += (
                " The token lacks the edit:invoices permission, so TrueUp can read quantities "
                "but not correct them."
            )
        return ConnectionCheck(message=message, latency_ms=latency_ms)

    def container_types(self) -> list[ContainerType]:
        # Halo's recurring invoices carry no type of their own (only an optional contract), so
        # there is nothing meaningful to choose between: every recurring invoice is one type.
        return [RECURRING_INVOICES]

    def iter_companies(self) -> Iterator[Page[CompanyRecord]]:
        for page in self._pages("Client", "clients", CLIENT_FILTERS):
            yield Page([_company(c) for c in page.items], page.number, page.total_pages)

    def iter_products(self) -> Iterator[Page[ProductRecord]]:
        for page in self._pages("Item", "items", {"includeinactive": "true"}):
            yield Page([_product(i) for i in page.items], page.number, page.total_pages)

    def iter_billing_lines(self, container_type_ids: list[str]) -> Iterator[Page[LineRecord]]:
        if container_type_ids and RECURRING_INVOICES.external_id not in container_type_ids:
            return
        for page in self._pages("RecurringInvoice", "invoices", {"includelines": "true"}):
            lines = []
            for header in page.items:
                container = _container(header)
                lines += [_line(line, container) for line in _lines_of(header)]
            yield Page(lines, page.number, page.total_pages)

    def read_line(self, key: LineKey, on: datetime.date | None = None) -> LineRecord:
        header = self._get(f"RecurringInvoice/{key.container_id}", missing="recurring invoice")
        if not isinstance(header, dict):
            raise BadAnswer(f"Halo answered recurring invoice {key.container_id} with no object.")
        container = _container(header)
        for line in _lines_of(header):
            if str(line.get("id")) == str(key.line_id):
                return _line(line, container)
        raise BadAnswer(
            f"Halo's recurring invoice {key.container_id} has no line {key.line_id} any more: "
            "it was deleted or moved in Halo."
        )

    def write_quantity(
        self, key: LineKey, current: Decimal, quantity: Decimal, effective_date: datetime.date
    ) -> WriteAnswer:
        reason = _read_only_reason(key.raw) if key.raw else ""
        if reason:
            raise WriteRejected(reason)
        if quantity < 0:
            raise WriteRejected(f"Halo takes no negative quantity (asked for {quantity}).")
        body = [
            {
                "id": _id(key.line_id),
                "ihid": _id(key.container_id),
                "qty_order": fields.json_number(quantity),
            }
        ]
        response = self._send("POST", "RecurringInvoice/updatelines", json_body=body, write=True)
        return WriteAnswer(status_code=response.status_code, body=response.text[:2000])

    @property
    def requests(self) -> int:
        """HTTP requests sent (token requests included), for the sync report."""
        return self.api.requests + self.auth_api.requests

    def close(self) -> None:
        self.api.close()
        self.auth_api.close()

    # --- token -------------------------------------------------------------------------------

    def _access_token(self, rejected: str = "") -> tuple[str, bool]:
        """The cached token, or a new one; the flag says whether it was fetched just now.
        `rejected`: a token Halo refused (a request in another thread may have renewed it
        already). Under a lock: requests run in several threads at once."""
        with self._token_lock:
            if rejected and self._token == rejected:
                self._token = None
            if self._token and time.monotonic() < self._token_renew_at:
                return self._token, False
            self._token = None
            self._fetch_token()
            return self._token, True

    def _fetch_token(self) -> None:
        if not self.auth_server:
            raise BadAnswer("The Halo authorisation server URL is missing.")
        url = f"{self.auth_server}/token"
        form = {
            "grant_type": "client_credentials",
            "client_id": str(self.secrets.get("client_id", "")),
            "client_secret": str(self.secrets.get("client_secret", "")),
            "scope": self.scope,
        }
        params = {"tenant": self.tenant} if self.tenant else None
        # Asking for a token changes nothing, so it is retried like a read.
        response = self.auth_api.transmit("POST", url, retry_post=True, params=params, data=form)
        where = f"Halo's authorisation server at {host_of(self.auth_server)}"
        if response.status_code in (400, 401, 403) and self.auth_api.is_json(response):
            answer = self.auth_api.json(response)
            error = answer.get("error", "") if isinstance(answer, dict) else ""
            detail = answer.get("error_description", "") if isinstance(answer, dict) else ""
            detail = f": {detail}" if detail else ""
            if error == "invalid_client" or (response.status_code == 401 and not error):
                raise CredentialRejected(
                    f"Halo rejected the client ID or secret ({error or 'HTTP 401'}). Check that "
                    "the application in Halo is of the type 'Client ID and Secret (Services)', "
                    "and copy the ID and secret again."
                )
            if error == "invalid_scope":
                raise CredentialRejected(
                    f"Halo does not grant the scope '{self.scope}' (invalid_scope{detail}). "
                    "Use 'all', or the permissions read:customers read:items read:invoices "
                    "edit:invoices."
                )
            raise CredentialRejected(
                f"Halo refused to issue a token ({error or f'HTTP {response.status_code}'}"
                f"{detail})."
            )
        if response.status_code >= 300:
            raise self.auth_api.error(response)
        answer = self.auth_api.json(response)
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not token:
            raise BadAnswer(f"{where} answered without an access token.")
        lifetime = _float(answer.get("expires_in"), 3600.0)
        margin = min(TOKEN_MARGIN_SECONDS, lifetime / 10)
        self._token = str(token)
        self._token_scope = str(answer.get("scope") or self.scope)
        self._token_renew_at = time.monotonic() + max(lifetime - margin, 0.0)

    # --- requests ----------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        if not self.resource_server:
            raise BadAnswer("The Halo resource server URL is missing.")
        return f"{self.resource_server}/{path}"

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json_body=None,
        write: bool = False,
        missing: str = "",
    ) -> httpx.Response:
        """One API call with the Bearer token; an expired cached token is renewed once."""
        url = self._url(path)
        token, fresh = self._access_token()
        response = self._authorised(method, url, token, params, json_body)
        if response.status_code == 401 and not fresh:
            # Expired or revoked: normal, ask for a new one and repeat.
            token, _ = self._access_token(rejected=token)
            response = self._authorised(method, url, token, params, json_body)
        if response.status_code == 404 and missing and self.api.is_json(response):
            raise BadAnswer(f"Halo has no {missing} {path.rsplit('/', 1)[-1]} (HTTP 404).")
        if response.status_code >= 300:
            raise self.api.error(response, write=write)
        return response

    def _authorised(self, method, url, token, params, json_body) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return self.api.transmit(method, url, params=params, json=json_body, headers=headers)

    def _get(self, path: str, params: dict | None = None, missing: str = ""):
        response = self._send("GET", path, params=params, missing=missing)
        return self.api.json(response, exact=True)

    def _pages(self, resource: str, key: str, params: dict) -> Iterator[Page[dict]]:
        """Every record of a list, one `Page` per API page. Page 1's `record_count` tells how
        many pages there are; the others are fetched at once (the adapter's concurrency)."""

        def fetch(number: int) -> tuple[list, int]:
            query = {**params, "pageinate": "true", "page_size": self.page_size, "page_no": number}
            body = self._get(resource, query)
            records = body.get(key) if isinstance(body, dict) else None
            if not isinstance(records, list):
                raise BadAnswer(f"Halo's {resource} list came without its '{key}' records.")
            total = _record_count(body, resource)
            return records, math.ceil(total / self.page_size) if total else 1

        seen = set()
        for number, last, records in numbered_pages(fetch, self.concurrency):
            yield Page(unseen(records, seen, f"Halo's {resource} list"), number, last)


# --- records -----------------------------------------------------------------------------------


def _company(client: dict) -> CompanyRecord:
    external_id = record_id(client.get("id"), "Halo answered a client")
    return CompanyRecord(
        external_id=external_id,
        name=record_name(client.get("name"), f"Halo client {external_id}", "Halo"),
        identifier=str(client.get("reference") or client.get("accountsid") or "").strip(),
        active=not client.get("inactive", False),
        raw=plain_json(client),
    )


def _product(item: dict) -> ProductRecord:
    recurring = bool(item.get("isrecurringitem"))
    price = item.get("recurringprice") if recurring else None
    cost = item.get("recurringcost") if recurring else None
    external_id = record_id(item.get("id"), "Halo answered an item")
    return ProductRecord(
        external_id=external_id,
        identifier=_reference(item, "internalreference", "externalreference", "supplier_part_code"),
        name=record_name(item.get("name"), f"Halo item {external_id}", "Halo"),
        description=str(item.get("description") or ""),
        unit_price=_decimal(price if price is not None else item.get("baseprice")),
        unit_cost=_decimal(cost if cost is not None else item.get("costprice")),
        active=not item.get("inactive", False),
        raw=plain_json(item),
    )


def _container(header: dict) -> ContainerRecord:
    raw = plain_json({k: v for k, v in header.items() if k != "lines"})
    external_id = record_id(header.get("id"), "Halo answered a recurring invoice")
    client_id = header.get("client_id")
    return ContainerRecord(
        external_id=external_id,
        company_external_id=""
        if client_id is None
        else record_id(client_id, f"Halo answered recurring invoice {external_id} with a client"),
        kind=CONTAINER_KIND,
        type_name=RECURRING_INVOICES.name,
        name=str(header.get("reference") or header.get("client_name") or "").strip(),
        status="Disabled" if header.get("disabled") else "Active",
        start_date=_date(header.get("startdate")),
        end_date=_date(header.get("enddate")),
        raw=raw,
    )


def _lines_of(header: dict) -> list[dict]:
    return fields.objects(
        header.get("lines"), "Halo", f"recurring invoice {header.get('id')} with lines"
    )


def _line(line: dict, container: ContainerRecord) -> LineRecord:
    external_id = record_id(line.get("id"), "Halo answered a recurring invoice line")
    what = f"line {external_id} of recurring invoice {container.external_id}"
    item_id = line.get("_itemid")
    quantity = _decimal(line.get("qty_order"))
    if quantity is None:
        raise BadAnswer(f"Halo answered {what} without its quantity (qty_order).")
    return LineRecord(
        external_id=external_id,
        container=container,
        product_external_id=record_id(item_id, f"Halo answered {what} with an item")
        if item_id not in (None, 0, "", "0")
        else None,
        product_identifier=_reference(line, "item_internal_reference", "item_code"),
        description=str(line.get("item_shortdescription") or "").strip(),
        quantity=quantity,
        unit_price=_decimal(line.get("unit_price")),
        effective_date=_date(line.get("startdate")),
        cancelled_date=_date(line.get("enddate")),
        read_only_reason=_read_only_reason(line),
        raw=plain_json(line),
    )


def _read_only_reason(line: dict) -> str:
    kind = line.get("recurring_invoice_quantity_type") or 0
    try:
        kind = int(kind)
    except (TypeError, ValueError):
        kind = -1
    if line.get("calculate_price_from_users") or (kind == 1):
        source = "users"
    elif line.get("calculate_price_from_assets"):
        source = "assets"
    elif kind == 0:
        return ""
    else:
        source = QUANTITY_SOURCES.get(kind, "")
    if source:
        return f"Halo calculates this quantity from the client's {source}, so TrueUp cannot set it."
    return f"Halo calculates this quantity itself (quantity type {kind}), so TrueUp cannot set it."


# --- values ------------------------------------------------------------------------------------


def _record_count(body, resource: str) -> int:
    count = body.get("record_count") if isinstance(body, dict) else None
    if isinstance(count, bool) or not isinstance(count, int | Decimal):
        raise BadAnswer(f"Halo's {resource} list came without a record_count.")
    return int(count)


def _decimal(value) -> Decimal | None:
    return fields.number(value, "Halo")


def _float(value, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _date(value) -> datetime.date | None:
    return fields.date(value, "Halo", none=(NO_DATE,))


def _reference(record: dict, *names: str) -> str:
    for name in names:
        value = str(record.get(name) or "").strip()
        if value:
            return value
    return ""


def _id(value: str) -> int | str:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value
