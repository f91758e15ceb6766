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
import json
import math
import time
from collections.abc import Iterator
from decimal import Decimal
from urllib.parse import urlsplit

import httpx
from django.conf import settings as django_settings

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
from reconcile.core import http
from reconcile.core.errors import (
    BadAnswer,
    CredentialRejected,
    RateLimited,
    ServerFault,
    Unreachable,
    WriteRejected,
)
from reconcile.core.fields import excerpt, plain_json, record_id, record_name

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


class HaloAdapter(PSAAdapter):
    """settings: resource_server (…/api), auth_server (…/auth), tenant (optional), scope
    ("all" by default), page_size (optional, 100 by default); secrets: client_id, client_secret.
    """

    kind = "halo"
    label = "HaloPSA"

    def __init__(self, *, settings: dict, secrets: dict):
        super().__init__(settings=settings, secrets=secrets)
        self.resource_server = str(settings.get("resource_server", "")).strip().rstrip("/")
        self.auth_server = str(settings.get("auth_server", "")).strip().rstrip("/")
        self.tenant = str(settings.get("tenant") or "").strip()
        self.scope = str(settings.get("scope") or DEFAULT_SCOPE).strip()
        self.page_size = max(int(settings.get("page_size") or DEFAULT_PAGE_SIZE), 1)
        self.requests = 0  # HTTP requests sent (token requests included), for the sync report
        self._token: str | None = None
        self._token_scope = ""
        self._token_renew_at = 0.0
        self._http: httpx.Client | None = None
        self._auth_http: httpx.Client | None = None

    # --- interface ---------------------------------------------------------------------------

    def test(self) -> ConnectionCheck:
        started = time.monotonic()
        self._token = None
        body = self._get(
            "Client", {**CLIENT_FILTERS, "pageinate": "true", "page_size": 1, "page_no": 1}
        )
        latency_ms = round((time.monotonic() - started) * 1000)
        count = _record_count(body, "Client")
        where = f"tenant {self.tenant}" if self.tenant else _host(self.resource_server)
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
            {"id": _id(key.line_id), "ihid": _id(key.container_id), "qty_order": _number(quantity)}
        ]
        response = self._send("POST", "RecurringInvoice/updatelines", json_body=body, write=True)
        return WriteAnswer(status_code=response.status_code, body=response.text[:2000])

    def close(self) -> None:
        for client in (self._http, self._auth_http):
            if client is not None:
                client.close()
        self._http = self._auth_http = None

    # --- token -------------------------------------------------------------------------------

    def _access_token(self) -> tuple[str, bool]:
        """The cached token, or a new one; the flag says whether it was fetched just now."""
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
        if self._auth_http is None:
            # Asking for a token changes nothing, so it is retried like a read.
            self._auth_http = http.client(retry_post=True, limiter=self.limiter, api="Halo")
        response = self._transmit(self._auth_http, "POST", url, params=params, data=form)
        where = f"Halo's authorisation server at {_host(self.auth_server)}"
        if not _is_json(response) and response.status_code != 429:
            raise Unreachable(
                f"Could not reach {where}: {url} answered with a web page (HTTP "
                f"{response.status_code}), not a token. Check the authorisation server URL "
                "(it ends in /auth)."
            )
        if response.status_code == 429 or response.status_code >= 500:
            self._raise_for_status(response, where)
        answer = _json(response, where)
        if response.status_code in (400, 401, 403):
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
        self._raise_for_status(response, where)
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not token:
            raise BadAnswer(f"{where} answered without an access token.")
        lifetime = _float(answer.get("expires_in"), 3600.0)
        margin = min(TOKEN_MARGIN_SECONDS, lifetime / 10)
        self._token = str(token)
        self._token_scope = str(answer.get("scope") or self.scope)
        self._token_renew_at = time.monotonic() + max(lifetime - margin, 0.0)

    # --- requests ----------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = http.client(
                headers={"Accept": "application/json"}, limiter=self.limiter, api="Halo"
            )
        return self._http

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
            self._token = None  # expired or revoked: normal, ask for a new one and repeat
            token, _ = self._access_token()
            response = self._authorised(method, url, token, params, json_body)
        area = AREAS.get(path.split("/")[0], "invoices")
        where = f"Halo at {_host(self.resource_server)}"
        if response.status_code == 401:
            raise CredentialRejected(
                f"{where} refused the token its authorisation server had just issued (HTTP "
                "401). Check that the resource server and authorisation server URLs belong "
                "to the same Halo instance (and the tenant, if you set one)."
            )
        if response.status_code == 403:
            verb = "edit" if write else "read"
            message = f"Halo's token lacks the {verb}:{area} permission (HTTP 403)."
            if _message(response):
                message += f" Halo said: {_message(response)}"
            message += " Add it to the application in Halo, or use the scope 'all'."
            if write:
                raise WriteRejected(message, response.status_code, response.text)
            raise CredentialRejected(message)
        if not _is_json(response) and response.status_code != 429:
            if write and 400 <= response.status_code < 500 and response.status_code != 404:
                raise WriteRejected(
                    f"Halo refused the new quantity (HTTP {response.status_code}).",
                    response.status_code,
                    response.text,
                )
            raise Unreachable(
                f"Could not reach the Halo API at {_host(self.resource_server)}: {url} answered "
                f"with a web page (HTTP {response.status_code}), not the API. Check the "
                "resource server URL (it ends in /api)."
            )
        if write and 400 <= response.status_code < 500 and response.status_code != 429:
            said = _message(response) or f"HTTP {response.status_code}"
            raise WriteRejected(
                f"Halo refused the new quantity: {said}", response.status_code, response.text
            )
        if response.status_code == 404 and missing:
            raise BadAnswer(f"Halo has no {missing} {path.rsplit('/', 1)[-1]} (HTTP 404).")
        self._raise_for_status(response, where)
        return response

    def _authorised(self, method, url, token, params, json_body) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return self._transmit(
            self._client(), method, url, params=params, json=json_body, headers=headers
        )

    def _transmit(self, client: httpx.Client, method: str, url: str, **options) -> httpx.Response:
        self.requests += 1
        try:
            return client.request(method, url, **options)
        except httpx.TimeoutException as error:
            raise Unreachable(
                f"Could not reach Halo at {_host(url)}: no answer within "
                f"{django_settings.TRUEUP_HTTP_TIMEOUT:g} seconds."
            ) from error
        except httpx.ConnectError as error:
            raise Unreachable(
                f"Could not reach Halo at {_host(url)}: the connection was refused or the host "
                "is unknown."
            ) from error
        except httpx.UnsupportedProtocol as error:
            raise Unreachable(f"The Halo URL {url} is not an http(s) address.") from error
        except httpx.HTTPError as error:
            raise Unreachable(f"Could not reach Halo at {_host(url)}: {error}.") from error

    def _raise_for_status(self, response: httpx.Response, where: str) -> None:
        status = response.status_code
        if status < 300:
            return
        said = _message(response)
        said = f": {said}" if said else "."
        if status == 429:
            raise RateLimited(
                f"{where} is rate limiting requests (HTTP 429) and kept doing so after "
                f"{django_settings.TRUEUP_HTTP_RETRIES} retries. Try again in a few minutes."
            )
        if status >= 500:
            raise ServerFault(f"{where} answered with a server error (HTTP {status}){said}")
        if 300 <= status < 400:
            raise Unreachable(
                f"{where} redirected the request (HTTP {status}) to "
                f"{response.headers.get('Location', 'elsewhere')}. Check the URL."
            )
        raise BadAnswer(f"{where} refused the request (HTTP {status}){said}")

    def _get(self, path: str, params: dict | None = None, missing: str = ""):
        response = self._send("GET", path, params=params, missing=missing)
        return _json(response, f"Halo at {_host(self.resource_server)}", exact=True)

    def _pages(self, resource: str, key: str, params: dict) -> Iterator[Page[dict]]:
        """Every record of a list, one `Page` per API page, until `record_count` are read."""
        number, read, seen = 1, 0, set()
        while True:
            query = {**params, "pageinate": "true", "page_size": self.page_size, "page_no": number}
            body = self._get(resource, query)
            records = body.get(key) if isinstance(body, dict) else None
            if not isinstance(records, list):
                raise BadAnswer(f"Halo's {resource} list came without its '{key}' records.")
            total = _record_count(body, resource)
            read += len(records)
            fresh = []
            for record in records:
                if not isinstance(record, dict):
                    raise BadAnswer(f"Halo's {resource} list holds {excerpt(record)}, no record.")
                identity = record_id(record.get("id"), f"Halo's {resource} list has a record")
                if identity not in seen:  # a page boundary that moved while paging
                    seen.add(identity)
                    fresh.append(record)
            yield Page(fresh, number, math.ceil(total / self.page_size) if total else 1)
            if not records or read >= total:
                return
            number += 1


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
    lines = header.get("lines")
    if lines is None:
        return []
    if not isinstance(lines, list):
        raise BadAnswer(f"Halo's recurring invoice {header.get('id')} has lines that are no list.")
    return [line for line in lines if isinstance(line, dict)]


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


def _json(response: httpx.Response, where: str, exact: bool = False):
    """The body as JSON; with `exact`, numbers with a fraction become Decimal, digit for digit."""
    try:
        if exact:
            return json.loads(response.text, parse_float=Decimal)
        return response.json()
    except ValueError as error:
        if response.status_code >= 500:
            raise ServerFault(
                f"{where} answered with a server error (HTTP {response.status_code})."
            ) from error
        raise BadAnswer(
            f"{where} answered HTTP {response.status_code} with a body that is not JSON."
        ) from error


def _is_json(response: httpx.Response) -> bool:
    if not response.content:
        return True  # an empty answer (Halo's 401) is judged by its status
    return "json" in response.headers.get("content-type", "").lower()


def _message(response: httpx.Response) -> str:
    """Halo's error text: a JSON string, OAuth's error_description, .NET's Message, or a dict."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, str):
        return body.strip()[:300]
    if isinstance(body, dict):
        for name in ("error_description", "Message", "message", "error", "title"):
            if body.get(name):
                return str(body[name]).strip()[:300]
        if len(body) == 1:
            return str(next(iter(body.values()))).strip()[:300]
    return ""


def _record_count(body, resource: str) -> int:
    count = body.get("record_count") if isinstance(body, dict) else None
    if isinstance(count, bool) or not isinstance(count, int | Decimal):
        raise BadAnswer(f"Halo's {resource} list came without a record_count.")
    return int(count)


def _decimal(value) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if not isinstance(value, int | str):
        raise BadAnswer(f"Halo sent {excerpt(value)} where a number belongs.")
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError:
        raise BadAnswer(f"Halo sent {excerpt(value)} where a number belongs.") from None
    if not number.is_finite():
        raise BadAnswer(f"Halo sent {excerpt(value)} where a number belongs.")
    return number


def _number(value: Decimal) -> int | float:
    """A Decimal as a JSON number: an int when whole, else the nearest double."""
    return int(value) if value == value.to_integral_value() else float(value)


def _float(value, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _date(value) -> datetime.date | None:
    if not value or not isinstance(value, str) or value.startswith(NO_DATE):
        return None
    try:
        return datetime.date.fromisoformat(value[:10])
    except ValueError:
        return None


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


def _host(url: str) -> str:
    return urlsplit(url).netloc or url
