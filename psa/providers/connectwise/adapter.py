"""ConnectWise PSA (Manage) REST 3.0: companies, catalogue, agreement additions, quantity writes.

Settings: `site` (https://api-na.myconnectwise.net, or a UI host such as na.myconnectwise.net,
which is mapped to its API host), `codebase` ("" to discover it with the unauthenticated
`GET {site}/login/companyinfo/{company_id}`; `test()` hands the discovered one back to be
stored), `client_id` (the integration's clientId GUID) and optionally `page_size` (1-1000,
default 1000). Secrets: `company_id`, `public_key`, `private_key`, sent as HTTP Basic
`company_id+public_key:private_key`.

Every list is read with `page`/`pageSize`, ordered by id, and followed while the `Link` header
has a rel="next" (or, when an API answers without a Link header, while pages come back full).
ConnectWise lists additions per agreement only, so the billing lines cost one request per
agreement page plus one per agreement (more only for an agreement with > page_size additions).
Quantities are absolute: `write_quantity` PATCHes `quantity` with a JSON Patch.
"""

import datetime
import re
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from urllib.parse import parse_qs, quote, urlsplit

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
from reconcile.core.errors import BadAnswer, CredentialRejected, ExternalAPIError, Unreachable
from reconcile.core.fields import record_id, record_name, text
from reconcile.core.http import OutsideAPI, host_of
from reconcile.core.parallel import in_parallel

API = "ConnectWise"
MAX_PAGE_SIZE = 1000
# ConnectWise's own cloud UI hosts and the API host that serves each of them.
CLOUD_API_HOSTS = {
    "na.myconnectwise.net": "api-na.myconnectwise.net",
    "eu.myconnectwise.net": "api-eu.myconnectwise.net",
    "au.myconnectwise.net": "api-au.myconnectwise.net",
    "aus.myconnectwise.net": "api-aus.myconnectwise.net",
    "za.myconnectwise.net": "api-za.myconnectwise.net",
    "staging.connectwisedev.com": "api-staging.connectwisedev.com",
}
# Company types that are never a customer (ConnectWise lets each MSP name its own types).
NON_CUSTOMER_TYPES = {"vendor", "supplier", "distributor"}
_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?([^",;]+)"?')
_EXCERPT = 1000


class ConnectWiseAPI(OutsideAPI):
    """What ConnectWise's answers mean beyond the common rules."""

    name = API
    hint = "Check the site URL."

    def __init__(self, adapter: "ConnectWiseAdapter", **options):
        super().__init__(
            limiter=adapter.limiter, slots=adapter.slots, location=host_of(adapter.site), **options
        )
        self.adapter = adapter

    def said(self, response: httpx.Response) -> str:
        """ConnectWise's own words: `message` and each `errors[].message`."""
        try:
            body = response.json()
        except ValueError:
            return ""
        if not isinstance(body, dict):
            return ""
        messages = [str(body["message"])] if body.get("message") else []
        for error in body.get("errors") or []:
            if isinstance(error, dict) and error.get("message"):
                messages.append(str(error["message"]))
        return ": ".join(messages)[:500]

    def rejected(self, response: httpx.Response) -> ExternalAPIError:
        company = self.adapter.company_id
        if response.status_code == 401:
            return CredentialRejected(
                f"ConnectWise rejected the public/private key pair for company {company} "
                "(HTTP 401). Check the company ID and both API member keys."
            )
        said = self.said(response) if self.is_json(response) else ""
        return CredentialRejected(
            f"ConnectWise refused the API member of company {company} access (HTTP 403)"
            f"{': ' + said.rstrip('.') if said else ''}. Check the member's security role."
        )

    def special(self, response: httpx.Response, *, write: bool) -> ExternalAPIError | None:
        status, path = response.status_code, str(response.request.url)
        if status == 404 and not self.is_json(response) and "/apis/3.0/" in path:
            return Unreachable(
                f"ConnectWise has no codebase {self.adapter._codebase} at {self.location} "
                "(HTTP 404 web page). Clear the codebase to discover the current one, or "
                "check the site URL."
            )
        if status == 400 and self.is_json(response) and "clientid" in self.said(response).lower():
            return CredentialRejected(
                f"ConnectWise refused the clientId (HTTP 400): {self.said(response)}"
            )
        return None


class ConnectWiseAdapter(PSAAdapter):
    # ConnectWise publishes no limit (it answers 429 with Retry-After): a conservative 6
    # (docs/providers/concurrency.md).
    default_concurrency = 6
    kind = "connectwise"
    label = "ConnectWise PSA"

    def __init__(self, *, settings: dict, secrets: dict):
        super().__init__(settings=settings, secrets=secrets)
        self._codebase = _clean_codebase(settings.get("codebase") or "")
        self._codebase_lock = threading.Lock()
        # One API object for the adapter's life (kept-alive connections, one TLS handshake):
        # a push reads, writes and reads back through the same connection.
        self._api: ConnectWiseAPI | None = None

    @property
    def requests(self) -> int:
        return self._api.requests if self._api else 0

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
        self._api = None

    # --- the interface ------------------------------------------------------------------------

    def test(self) -> ConnectionCheck:
        started = time.monotonic()
        discovered = {}
        api = self._session()
        if not self._codebase:
            self._codebase = self._discover_codebase(api)
            discovered["codebase"] = self._codebase + "/"
        count = api.get_json("company/companies/count", {"conditions": "deletedFlag = false"})
        latency = round((time.monotonic() - started) * 1000)
        companies = count.get("count") if isinstance(count, dict) else None
        if not isinstance(companies, int):
            raise BadAnswer(
                f"ConnectWise at {self.where} answered the company count with {count!r}."
            )
        message = (
            f"ConnectWise accepted the keys (company {self.company_id}, codebase "
            f"{self._codebase}, {companies} companies)."
        )
        return ConnectionCheck(message=message, latency_ms=latency, settings=discovered)

    def container_types(self) -> list[ContainerType]:
        api = self._session()
        return [
            ContainerType(external_id=str(t["id"]), name=str(t.get("name", "")))
            for page in api.pages("finance/agreements/types", {"orderBy": "name asc"})
            for t in page.items
        ]

    def iter_companies(self) -> Iterator[Page[CompanyRecord]]:
        params = {"conditions": "deletedFlag = false", "orderBy": "id asc"}
        api = self._session()
        for page in api.pages("company/companies", params):
            items = [_company(c) for c in page.items if _is_customer_side(c)]
            yield Page(items, page.number, page.total_pages)

    def iter_products(self) -> Iterator[Page[ProductRecord]]:
        api = self._session()
        for page in api.pages("procurement/catalog", {"orderBy": "id asc"}):
            yield Page([_product(p) for p in page.items], page.number, page.total_pages)

    def iter_billing_lines(self, container_type_ids: list[str]) -> Iterator[Page[LineRecord]]:
        params = {"orderBy": "id asc"}
        if container_type_ids:
            ids = ", ".join(str(_int_id(i, "agreement type id")) for i in container_type_ids)
            params["conditions"] = f"type/id in ({ids})"
        api = self._session()

        def lines_of(agreement: dict) -> list[LineRecord]:
            container = _container(agreement)
            path = f"finance/agreements/{_int_id(agreement.get('id'), 'agreement id')}/additions"
            return [
                _line(addition, container)
                for additions in api.pages(path, {"orderBy": "id asc"})
                for addition in additions.items
            ]

        # Additions are listed per agreement: those requests go out at once.
        for page in api.pages("finance/agreements", params):
            lines = in_parallel(lines_of, page.items, self.concurrency)
            yield Page([line for some in lines for line in some], page.number, page.total_pages)

    def read_line(self, key: LineKey, on: datetime.date | None = None) -> LineRecord:
        agreement_id = _int_id(key.container_id, "agreement id")
        line_id = _int_id(key.line_id, "addition id")
        api = self._session()
        agreement = api.get_json(f"finance/agreements/{agreement_id}")
        addition = api.get_json(f"finance/agreements/{agreement_id}/additions/{line_id}")
        if not isinstance(agreement, dict) or not isinstance(addition, dict):
            raise BadAnswer(f"ConnectWise at {self.where} did not answer with addition {line_id}.")
        return _line(addition, _container(agreement))

    def write_quantity(
        self, key: LineKey, current: Decimal, quantity: Decimal, effective_date: datetime.date
    ) -> WriteAnswer:
        # ConnectWise takes the absolute quantity; `current` and `effective_date` are not sent
        # (ConnectWise prorates the change itself when the addition asks for it).
        agreement_id = _int_id(key.container_id, "agreement id")
        line_id = _int_id(key.line_id, "addition id")
        patch = [{"op": "replace", "path": "quantity", "value": fields.json_number(quantity)}]
        path = f"finance/agreements/{agreement_id}/additions/{line_id}"
        api = self._session()
        response = api.send("PATCH", path, json=patch, write=True)
        return WriteAnswer(response.status_code, response.text[:_EXCERPT])

    # --- plumbing -----------------------------------------------------------------------------

    @property
    def site(self) -> str:
        return _clean_site(self.settings.get("site") or "")

    @property
    def where(self) -> str:
        """The site for messages: host and path, no scheme."""
        return host_of(self.site)

    @property
    def company_id(self) -> str:
        return str(self.secrets.get("company_id") or "").strip()

    @property
    def page_size(self) -> int:
        try:
            size = int(self.settings.get("page_size") or MAX_PAGE_SIZE)
        except (TypeError, ValueError):
            raise BadAnswer("page_size must be a whole number between 1 and 1000.") from None
        return min(max(size, 1), MAX_PAGE_SIZE)

    def _session(self) -> "_Session":
        if not self.site:
            raise Unreachable(
                "ConnectWise site URL missing (e.g. https://api-na.myconnectwise.net)."
            )
        missing = [
            label
            for label, value in (
                ("company ID", self.company_id),
                ("public key", self.secrets.get("public_key")),
                ("private key", self.secrets.get("private_key")),
            )
            if not str(value or "").strip()
        ]
        if missing:
            raise CredentialRejected(f"ConnectWise {' and '.join(missing)} missing.")
        client_id = str(self.settings.get("client_id") or "").strip()
        if not client_id:
            raise CredentialRejected(
                "clientId missing: ConnectWise requires the integration's clientId (a GUID from "
                "developer.connectwise.com) on every request."
            )
        if self._api is None:
            self._api = ConnectWiseAPI(
                self,
                auth=httpx.BasicAuth(
                    f"{self.company_id}+{str(self.secrets['public_key']).strip()}",
                    str(self.secrets["private_key"]).strip(),
                ),
                headers={"clientId": client_id, "Accept": "application/json"},
            )
        return _Session(self, self._api)

    def _discover_codebase(self, api: "_Session") -> str:
        info = api.get_json(
            f"{self.site}/login/companyinfo/{quote(self.company_id, safe='')}", absolute=True
        )
        if info is None:
            raise CredentialRejected(
                f"ConnectWise at {self.where} does not know the company ID {self.company_id}."
            )
        codebase = info.get("Codebase") if isinstance(info, dict) else None
        if not isinstance(codebase, str) or not _clean_codebase(codebase):
            raise BadAnswer(
                f"ConnectWise at {self.where} did not name a codebase for company "
                f"{self.company_id} (it answered {str(info)[:200]!r})."
            )
        return _clean_codebase(codebase)

    def _api_root(self) -> str:
        with self._codebase_lock:  # an import's steps start at once: one discovery for all
            if not self._codebase:
                self._codebase = self._discover_codebase(_Session(self, self._api))
        return f"{self.site}/{self._codebase}/apis/3.0/"


class _Session:
    """Paging and JSON over the adapter's ConnectWiseAPI (which owns sending and errors)."""

    def __init__(self, adapter: ConnectWiseAdapter, api: ConnectWiseAPI):
        self.adapter, self.api = adapter, api

    def pages(self, path: str, params: dict) -> Iterator[Page[dict]]:
        """Every page of a list, `page_size` records at a time. Once page 1's Link header
        names the last page, the others are fetched at once (the adapter's concurrency)."""
        page, has_next = self._page(path, params, 1)
        yield page
        if not has_next or not page.items:
            return
        if page.total_pages:
            following = in_parallel(
                lambda number: self._page(path, params, number),
                range(2, page.total_pages + 1),
                self.adapter.concurrency,
            )
        else:
            following = self._following(path, params)
        previous = page
        for page, has_next in following:
            first = _first_id(page.items)
            if first is not None and first == _first_id(previous.items):
                raise BadAnswer(
                    f"ConnectWise at {self.adapter.where} answered page {page.number} of {path} "
                    "with the same records as the page before (paging is not working)."
                )
            yield page
            if not has_next or not page.items:
                return
            previous = page

    def _following(self, path: str, params: dict) -> Iterator[tuple[Page[dict], bool]]:
        """Pages 2, 3, ... one after another, for an answer that does not name its last page."""
        number = 2
        while True:
            page, has_next = self._page(path, params, number)
            yield page, has_next
            if not has_next or not page.items:
                return
            number += 1

    def _page(self, path: str, params: dict, number: int) -> tuple[Page[dict], bool]:
        """One page, and whether another follows."""
        size = self.adapter.page_size
        response = self.send("GET", path, params={**params, "page": number, "pageSize": size})
        items = self.api.json(response)
        if not isinstance(items, list):
            raise BadAnswer(
                f"ConnectWise at {self.adapter.where} answered {path} with "
                f"{type(items).__name__}, not a list."
            )
        links = _links(response.headers.get("Link", ""))
        has_next = "next" in links if response.headers.get("Link") else len(items) >= size
        total = _page_of(links.get("last")) or (number if not has_next else None)
        return Page(items, number, total), has_next

    def get_json(self, path: str, params: dict | None = None, *, absolute: bool = False):
        return self.api.json(self.send("GET", path, params=params, absolute=absolute))

    def send(self, method: str, path: str, *, absolute: bool = False, **options):
        url = path if absolute else self.adapter._api_root() + path
        return self.api.send(method, url, **options)


# --- records -------------------------------------------------------------------------------------


def _object(record, what: str) -> dict:
    return fields.obj(record, API, what)


def _company(c: dict) -> CompanyRecord:
    external_id = record_id(c.get("id"), "ConnectWise answered a company")
    status = c.get("status") if isinstance(c.get("status"), dict) else {}
    inactive = str(status.get("name", "")).strip().lower() == "inactive" or bool(
        status.get("inactiveFlag")
    )
    return CompanyRecord(
        external_id=external_id,
        name=record_name(c.get("name"), f"ConnectWise company {external_id}", "ConnectWise"),
        identifier=text(c.get("identifier")),
        active=not inactive and not c.get("deletedFlag", False),
        raw=c,
    )


def _is_customer_side(c: dict) -> bool:
    """False for a company whose every type is a vendor's (it is never billed)."""
    types = _object(c, "a company").get("types")
    types = types if isinstance(types, list) else []
    names = {text(t.get("name")).lower() for t in types if isinstance(t, dict)}
    return not names or not names <= NON_CUSTOMER_TYPES


def _product(p: dict) -> ProductRecord:
    external_id = record_id(
        _object(p, "a catalog item").get("id"), "ConnectWise answered a catalog item"
    )
    return ProductRecord(
        external_id=external_id,
        identifier=text(p.get("identifier")),
        # A catalog item's description is its name (the identifier is its product ID).
        name=record_name(
            p.get("description"), f"ConnectWise catalog item {external_id}", "ConnectWise"
        ),
        description=text(p.get("customerDescription")),
        unit_price=_decimal(p.get("price"), f"the price of catalog item {external_id}"),
        unit_cost=_decimal(p.get("cost"), f"the cost of catalog item {external_id}"),
        active=not p.get("inactiveFlag", False),
        raw=p,
    )


def _container(a: dict) -> ContainerRecord:
    external_id = record_id(
        _object(a, "an agreement").get("id"), "ConnectWise answered an agreement"
    )
    company = a.get("company") if isinstance(a.get("company"), dict) else {}
    agreement_type = a.get("type") if isinstance(a.get("type"), dict) else {}
    company_id = company.get("id")
    return ContainerRecord(
        external_id=external_id,
        company_external_id=""
        if company_id is None
        else record_id(company_id, f"ConnectWise answered agreement {external_id} with a company"),
        kind="agreement",
        type_name=text(agreement_type.get("name")),
        name=text(a.get("name")),
        status=text(a.get("agreementStatus")),
        start_date=_date(a.get("startDate")),
        end_date=_date(a.get("endDate")),
        raw=a,
    )


def _line(a: dict, container: ContainerRecord) -> LineRecord:
    external_id = record_id(_object(a, "an addition").get("id"), "ConnectWise answered an addition")
    what = f"addition {external_id} (agreement {container.external_id})"
    product = a.get("product") if isinstance(a.get("product"), dict) else {}
    quantity = _decimal(a.get("quantity"), f"the quantity of {what}")
    if quantity is None:
        raise BadAnswer(f"ConnectWise answered {what} without its quantity.")
    cancelled = _date(a.get("cancelledDate"))
    reason = ""
    if container.status.lower() == "cancelled" or a.get("agreementStatus") == "Cancelled":
        reason = "ConnectWise does not change the additions of a cancelled agreement."
    elif cancelled and cancelled <= datetime.date.today():
        reason = "ConnectWise does not change a cancelled addition."
    return LineRecord(
        external_id=external_id,
        container=container,
        product_external_id=record_id(product["id"], f"ConnectWise answered {what} with a product")
        if product.get("id") is not None
        else None,
        product_identifier=text(product.get("identifier")),
        description=text(a.get("description")) or text(a.get("invoiceDescription")),
        quantity=quantity,
        included_quantity=_decimal(a.get("lessIncluded"), f"the included quantity of {what}")
        or Decimal(0),
        unit_price=_decimal(a.get("unitPrice"), f"the unit price of {what}"),
        effective_date=_date(a.get("effectiveDate")),
        cancelled_date=cancelled,
        read_only_reason=reason,
        raw=a,
    )


# --- small helpers -------------------------------------------------------------------------------


def _clean_site(site: str) -> str:
    site = site.strip().rstrip("/")
    if not site:
        return ""
    if "://" not in site:
        site = "https://" + site
    parts = urlsplit(site)
    host = CLOUD_API_HOSTS.get(parts.netloc.lower(), parts.netloc)
    # A pasted API URL ("…/v4_6_release/apis/3.0") is cut back to the site.
    path = re.sub(r"/[^/]+/apis/3\.0.*$", "", parts.path).rstrip("/")
    return f"{parts.scheme}://{host}{path}"


def _clean_codebase(codebase: str) -> str:
    return codebase.strip().strip("/")


def _first_id(items: list):
    return items[0].get("id") if items and isinstance(items[0], dict) else None


def _links(header: str) -> dict[str, str]:
    return {rel.strip().lower(): url for url, rel in _LINK.findall(header or "")}


def _page_of(url: str | None) -> int | None:
    if not url:
        return None
    values = parse_qs(urlsplit(url).query).get("page")
    try:
        return int(values[-1]) if values else None
    except ValueError:
        return None


def _decimal(value, what: str = "a number") -> Decimal | None:
    return fields.number(value, API, what)


def _date(value) -> datetime.date | None:
    """ConnectWise sends dates as midnight UTC instants ("2024-01-01T00:00:00Z"): the date."""
    return fields.date(value, API)


def _int_id(value, what: str) -> int:
    return fields.int_id(value, API, what)
