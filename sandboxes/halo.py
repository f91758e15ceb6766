"""HaloPSA sandbox, mounted at /halo: authorisation server `{base}/halo/auth`, resource server
`{base}/halo/api` (paths case-insensitive, as on IIS).

Auth: `POST /auth/token` (form: grant_type=client_credentials, client_id, client_secret, scope;
the client may instead send HTTP Basic; `?tenant=` is accepted) answers
`{"scope", "token_type": "Bearer", "access_token", "expires_in"}`. Scopes: `all` or any of
read:/edit: customers, items, invoices. Errors are OAuth's: 400 unsupported_grant_type,
400 invalid_scope, 401 invalid_client.

Resources (Bearer token):
  GET  /api/Client            filters search, includeactive, includeinactive, toplevel_id
  GET  /api/Item              filters search, recurringonly, includeinactive
  GET  /api/RecurringInvoice  filters client_id, client_ids, contract_id, includelines
  GET  /api/{Client|Item|RecurringInvoice}/{id}   the bare object (a recurring invoice with lines)
  POST /api/RecurringInvoice                       [{"id": <header id>, "lines": [...]}]
  POST /api/RecurringInvoice/updatelines (or /Lines)   [{"id": <line id>, "ihid", "qty_order"}]
Lists answer `{"record_count", "<key>": [...]}` with key clients / items / invoices; with
`pageinate=true&page_size=&page_no=` (1-based, page_size default 50) also page_no and page_size.
Without pageinate, `count` caps the records. `order` / `orderdesc` sort.

Recurring invoice header ids are negative (as in the verbatim Halo sample). A line whose
`recurring_invoice_quantity_type` is not 0 has its quantity calculated by Halo (1 = from users;
`calculate_price_from_users` true) and shows `qty_order` 0.0; setting its qty_order is refused.
Posting a header with `lines` replaces the header's line set: a line left out is deleted, so a
client must send every line back (the research's warning). Vendors are suppliers in Halo, not
clients, so vendor companies are not served. Dates look like `2026-02-10T00:00:00`;
`1899-12-30T00:00:00` means "no date".

Inferred where the research is silent or [I]: an expired or unknown token gets 401 with an
empty body and `WWW-Authenticate: Bearer error="invalid_token"`; a missing scope 403; refusals
are 400 with a plain JSON string body, server faults 500 `{"ClassName", "Message"}` (both
shapes django-psa handles); updatelines answers the updated lines, a header POST the saved
header; qty_order must be a number >= 0; token lifetime 3600 s (`token_lifetime_seconds`
control key); no rate limit unless `rate_limit_per_minute` is set (Halo publishes none).
"""

import datetime
import functools
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from sandboxes import data, psa_data
from sandboxes.ratelimit import (
    ApiError,
    PartnerStates,
    SandboxControl,
    basic_auth,
    guid,
    html_error,
    int_or_none,
    mangling,
)

MOUNT = "/halo"
TOKEN_LIFETIME = 3600
DEFAULT_PAGE_SIZE = 50
NO_DATE = "1899-12-30T00:00:00"
SCOPES = {
    "all",
    *(f"{verb}:{area}" for verb in ("read", "edit") for area in ("customers", "items", "invoices")),
}


def _credentials(slug: str) -> dict:
    return {
        "auth_path": f"{MOUNT}/auth",
        "resource_path": f"{MOUNT}/api",
        "tenant": slug,
        "client_id": guid("halo", slug, "client"),
        "client_secret": f"{guid('halo', slug, 'secret-1')}-{guid('halo', slug, 'secret-2')}",
        "scope": "all",
    }


CREDENTIALS = {p.slug: _credentials(p.slug) for p in data.PARTNERS.values()}
DEMO_CREDENTIALS = CREDENTIALS[data.PARTNERS[data.DEMO_PARTNER_KEY].slug]


def partner_credentials(base_url: str, slug: str) -> dict:
    """A partner's credentials with the full authorisation and resource server URLs."""
    base = base_url.rstrip("/")
    return {
        **CREDENTIALS[slug],
        "auth_server": base + CREDENTIALS[slug]["auth_path"],
        "resource_server": base + CREDENTIALS[slug]["resource_path"],
    }


def demo_credentials(base_url: str) -> dict:
    return partner_credentials(base_url, data.PARTNERS[data.DEMO_PARTNER_KEY].slug)


def connection_fields(base_url: str, slug: str = "demo") -> tuple[dict, dict]:
    """What a person types into TrueUp's connect form for this partner: (settings, secrets)."""
    c = partner_credentials(base_url, slug)
    settings = {key: c[key] for key in ("resource_server", "auth_server", "tenant")}
    return settings, {"client_id": c["client_id"], "client_secret": c["client_secret"]}


# --- wire format -------------------------------------------------------------------------------

_TOP_LEVELS = {"Customer": (1, "Customers"), "Prospect": (2, "Prospects")}
_PRODUCTS = {p.id: p for p in psa_data.catalogue()}


def _date(day: datetime.date | None) -> str:
    return f"{day.isoformat()}T00:00:00" if day else NO_DATE


def _client(c: psa_data.PSACompanyRecord) -> dict:
    top_id, top_name = _TOP_LEVELS[c.company_type]
    return {
        "id": c.id,
        "name": c.name,
        "toplevel_id": top_id,
        "toplevel_name": top_name,
        "inactive": not c.active,
        "colour": "#2a6fd6",
        "website": "",
        "accountsid": c.identifier,
        "main_site_id": c.id * 10,
        "main_site_name": "Main",
        "is_vip": False,
        "taxable": True,
        "connectwiseid": 0,
        "autotaskid": 0,
        "customfields": [],
    }


def _item(p: psa_data.Product) -> dict:
    return {
        "id": p.id,
        "name": p.name,
        "description": p.name,
        "internalreference": p.identifier,
        "externalreference": "",
        "supplier_part_code": p.identifier,
        "baseprice": p.unit_price,
        "costprice": p.unit_cost,
        "isrecurringitem": True,
        "recurringprice": p.unit_price,
        "recurringcost": p.unit_cost,
        "inactive": not p.active,
        "itemgroup_id": 10 + psa_data.CATEGORY_NAMES.index(p.category),
        "itemgroup_name": p.category,
        "autotaskserviceid": 0,
    }


def _line(line: psa_data.BillingLine, header_id: int, sequence: int) -> dict:
    product = _PRODUCTS[line.product_id]
    record = {
        "id": line.id,
        "ihid": header_id,
        "_itemid": product.id,
        "item_code": product.identifier,
        "item_shortdescription": product.name,
        "item_longdescription": "",
        "item_internal_reference": product.identifier,
        "qty_order": 0.0 if line.calculated else float(line.quantity),
        "unit_price": line.unit_price,
        "unit_cost": line.unit_cost,
        "baseprice": product.unit_price,
        "tax_amount": 0.0,
        "isinactive": line.cancelled_date is not None,
        "startdate": _date(line.effective_date),
        "enddate": _date(line.cancelled_date),
        "recurring_invoice_quantity_type": 1 if line.calculated else 0,
        "calculate_price_from_users": line.calculated,
        "calculate_price_from_assets": False,
        "quantity_users": [],
        "quantity_assets": [],
        "quantity_licences": [],
        "quantity_subscriptions": [],
        "sequenceid": sequence,
    }
    _refresh(record)
    return record


def _refresh(line: dict) -> None:
    line["net_amount"] = round(line["qty_order"] * line["unit_price"], 2)


def _header(c: psa_data.BillingContainer, client: psa_data.PSACompanyRecord) -> dict:
    header_id = -c.id
    next_month = data.UNIVERSE_DATE.replace(day=1) + datetime.timedelta(days=32)
    return {
        "id": header_id,
        "client_id": client.id,
        "client_name": client.name,
        "site_id": client.id * 10,
        "contract_id": 0,
        "contract_ref": "",
        "reference": c.name,
        "disabled": c.status != "Active",
        "is_recurring_invoice": True,
        "period": 2,
        "schedule_id": 1,
        "lastcreationdate": _date(data.UNIVERSE_DATE.replace(day=1)),
        "nextcreationdate": _date(next_month.replace(day=1)) if c.status == "Active" else NO_DATE,
        "lines": [_line(line, header_id, i) for i, line in enumerate(c.lines, 1)],
    }


def _summary(header: dict, include_lines: bool) -> dict:
    summary = {k: v for k, v in header.items() if k != "lines"}
    summary["total"] = round(sum(line["net_amount"] for line in header["lines"]), 2)
    if include_lines:
        summary["lines"] = header["lines"]
    return summary


# --- state -------------------------------------------------------------------------------------


@dataclass
class _Tenant:
    clients: list[dict]
    items: list[dict]
    invoices: dict[int, dict]  # header id -> header with lines
    next_line_id: int = 0


def _build(slug: str) -> _Tenant:
    universe = psa_data.universe(slug)
    served = {c.id: c for c in universe.companies if c.company_type != "Vendor"}
    invoices = {-c.id: _header(c, served[c.company_id]) for c in universe.containers}
    next_line = max((line.id for line in universe.lines()), default=10_000) + 1
    return _Tenant(
        clients=[_client(c) for c in sorted(served.values(), key=lambda c: c.id)],
        items=[_item(p) for p in universe.products],
        invoices=invoices,
        next_line_id=next_line,
    )


_TENANTS: PartnerStates[_Tenant] = PartnerStates(_build)


@dataclass
class _Token:
    slug: str
    scopes: set[str]
    issued: float
    expires: float


_TOKENS: dict[str, _Token] = {}
_TOKEN_LOCK = threading.Lock()


def reset() -> None:
    _TENANTS.clear()
    with _TOKEN_LOCK:
        _TOKENS.clear()
    control.reset()


# --- errors ------------------------------------------------------------------------------------


def _error(status: int, message: str) -> JSONResponse:
    if status >= 500:
        return JSONResponse(
            {"ClassName": "System.Exception", "Message": message}, status_code=status
        )
    return JSONResponse(message, status_code=status)


control = SandboxControl("halo", _error, reset, {"token_lifetime_seconds": TOKEN_LIFETIME})

# --- auth --------------------------------------------------------------------------------------


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


async def _token(request: Request) -> Response:
    # urlencoded by hand: Starlette's form parser needs python-multipart, a dependency we lack
    form = {
        k: v[-1] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()
    }
    client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
    client_id, client_secret = basic_auth(request) or (client_id, client_secret)
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "Only client_credentials is supported.")
    slug = next(
        (
            s
            for s, c in CREDENTIALS.items()
            if c["client_id"] == client_id and c["client_secret"] == client_secret
        ),
        None,
    )
    if slug is None:
        return _oauth_error(401, "invalid_client", "The client id or secret is wrong.")
    scope = str(form.get("scope") or "all")
    scopes = set(scope.split())
    if not scopes <= SCOPES:
        return _oauth_error(400, "invalid_scope", f"Unknown scope: {' '.join(scopes - SCOPES)}")
    lifetime = int(control.fault("token_lifetime_seconds"))
    value = secrets.token_urlsafe(48)
    now = time.monotonic()
    with _TOKEN_LOCK:
        _TOKENS[value] = _Token(slug, scopes, now, now + lifetime)
    body = {"scope": scope, "token_type": "Bearer", "access_token": value, "expires_in": lifetime}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _bearer(request: Request) -> _Token:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    with _TOKEN_LOCK:
        found = _TOKENS.get(value.strip()) if scheme.lower() == "bearer" else None
    lifetime = int(control.fault("token_lifetime_seconds"))
    now = time.monotonic()
    if found is None or now >= min(found.expires, found.issued + lifetime):
        raise ApiError(401)
    return found


def _require(token: _Token, area: str, write: bool) -> None:
    allowed = {"all", f"edit:{area}"} | (set() if write else {f"read:{area}"})
    if not token.scopes & allowed:
        raise ApiError(
            403, f"The token's scope does not allow {'edit' if write else 'read'}:{area}."
        )


# --- lists -------------------------------------------------------------------------------------


def _flag(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    return default if raw is None else raw.strip().lower() in ("true", "1", "yes")


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"The value '{raw}' is not valid for {name}.") from None


def _sort_key(value):
    return (value is None, str(value).casefold() if isinstance(value, str) else value or 0)


def _listing(request: Request, key: str, records: list[dict], render=None) -> Response:
    order = request.query_params.get("order")
    if order:
        descending = _flag(request, "orderdesc", False)
        records = sorted(records, key=lambda r: _sort_key(r.get(order.lower())), reverse=descending)
    body = {"record_count": len(records)}
    if _flag(request, "pageinate", False):
        size = max(_int(request, "page_size", DEFAULT_PAGE_SIZE), 1)
        page = max(_int(request, "page_no", 1), 1)
        body.update(page_no=page, page_size=size)
        records = records[(page - 1) * size : page * size]
    elif request.query_params.get("count"):
        records = records[: max(_int(request, "count", len(records)), 0)]
    body[key] = [render(r) for r in records] if render else records
    return JSONResponse(body)


def _search(request: Request, records: list[dict], *fields: str) -> list[dict]:
    text = request.query_params.get("search", "").strip().casefold()
    if not text:
        return records
    return [r for r in records if any(text in str(r.get(f, "")).casefold() for f in fields)]


def _clients(request: Request, tenant: _Tenant) -> list[dict]:
    records = _search(request, tenant.clients, "name")
    include_active = _flag(request, "includeactive", True)
    include_inactive = _flag(request, "includeinactive", False)
    records = [r for r in records if (include_inactive if r["inactive"] else include_active)]
    toplevel = request.query_params.get("toplevel_id")
    if toplevel:
        records = [r for r in records if str(r["toplevel_id"]) == toplevel]
    return records


def _items(request: Request, tenant: _Tenant) -> list[dict]:
    records = _search(request, tenant.items, "name", "internalreference")
    if _flag(request, "recurringonly", False):
        records = [r for r in records if r["isrecurringitem"]]
    if not _flag(request, "includeinactive", False):
        records = [r for r in records if not r["inactive"]]
    return records


def _invoices(request: Request, tenant: _Tenant) -> list[dict]:
    headers = sorted(tenant.invoices.values(), key=lambda h: -h["id"])
    wanted = {request.query_params.get("client_id", "")}
    wanted |= set(request.query_params.get("client_ids", "").split(","))
    wanted.discard("")
    if wanted:
        headers = [h for h in headers if str(h["client_id"]) in wanted]
    contract = request.query_params.get("contract_id")
    if contract:
        headers = [h for h in headers if str(h["contract_id"]) == contract]
    return _search(request, headers, "reference", "client_name")


# --- writes ------------------------------------------------------------------------------------

_LINE_FIELDS = ("qty_order", "unit_price", "unit_cost")
_TEXT_FIELDS = ("item_shortdescription", "item_longdescription", "startdate", "enddate")


def _number(name: str, value) -> float:
    if isinstance(value, bool):
        raise ApiError(400, f"{name} must be a number.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"{name} must be a number.") from None
    if number < 0:
        raise ApiError(400, f"{name} cannot be negative.")
    return number


def _line_changes(line: dict, given: dict) -> dict:
    """The fields of `given` that change `line`; refuses a new qty_order on a calculated line."""
    changes = {}
    for name in _LINE_FIELDS:
        if name in given and _number(name, given[name]) != line[name]:
            changes[name] = _number(name, given[name])
    for name in _TEXT_FIELDS:
        if name in given and given[name] != line[name]:
            changes[name] = given[name]
    if "isinactive" in given and bool(given["isinactive"]) != line["isinactive"]:
        changes["isinactive"] = bool(given["isinactive"])
    if "qty_order" in changes and line["recurring_invoice_quantity_type"] != 0:
        raise ApiError(
            400,
            f"The quantity of line {line['id']} is calculated by Halo "
            f"(recurring_invoice_quantity_type {line['recurring_invoice_quantity_type']}) "
            "and cannot be set.",
        )
    return changes


def _new_line(tenant: _Tenant, header: dict, given: dict, sequence: int) -> dict:
    product = _PRODUCTS.get(int_or_none(given.get("_itemid")))
    if product is None:
        raise ApiError(400, "A new line needs the _itemid of an existing item.")
    line = psa_data.BillingLine(
        id=tenant.next_line_id,
        container_id=-header["id"],
        product_id=product.id,
        quantity=0,
        less_included=0,
        unit_price=product.unit_price,
        unit_cost=product.unit_cost,
        effective_date=datetime.datetime.now(datetime.UTC).date(),
        cancelled_date=None,
        calculated=False,
        kb4_customer_id=None,
    )
    tenant.next_line_id += 1
    record = _line(line, header["id"], sequence)
    record.update(_line_changes(record, given))
    _refresh(record)
    return record


def _log(token: _Token, path: str, header_id: int, line_id: int, changes: dict) -> None:
    control.log_write(
        partner=token.slug,
        method="POST",
        resource=path,
        id=line_id,
        header_id=header_id,
        changes={k: [old, new] for k, (old, new) in changes.items()},
    )


def _apply(token: _Token, path: str, line: dict, changes: dict) -> None:
    diff = {k: (line[k], v) for k, v in changes.items()}
    line.update(changes)
    _refresh(line)
    if diff:
        _log(token, path, line["ihid"], line["id"], diff)


def _update_header(token: _Token, tenant: _Tenant, given: dict) -> dict:
    header = tenant.invoices.get(int_or_none(given.get("id")))
    if header is None:
        raise ApiError(400, "The sandbox only updates existing recurring invoices: send their id.")
    if "lines" not in given:
        return header
    if not isinstance(given["lines"], list):
        raise ApiError(400, "lines must be a list.")
    existing = {line["id"]: line for line in header["lines"]}
    plan = []  # validate every line before changing any
    for sequence, line_given in enumerate(given["lines"], 1):
        if not isinstance(line_given, dict):
            raise ApiError(400, "Each line must be an object.")
        line = existing.get(line_given.get("id"))
        if line is None:
            plan.append((None, _new_line(tenant, header, line_given, sequence)))
        else:
            plan.append((line, _line_changes(line, line_given)))
    kept = []
    for line, change in plan:
        if line is None:
            created = {"created": (None, change["qty_order"])}
            _log(token, "RecurringInvoice", header["id"], change["id"], created)
            kept.append(change)
        else:
            _apply(token, "RecurringInvoice", line, change)
            kept.append(line)
    for dropped in sorted(set(existing) - {line["id"] for line in kept}):
        deleted = {"deleted": (existing[dropped]["qty_order"], None)}
        _log(token, "RecurringInvoice", header["id"], dropped, deleted)
    header["lines"] = kept
    return header


def _update_lines(token: _Token, tenant: _Tenant, lines: list) -> list[dict]:
    by_id = {line["id"]: line for h in tenant.invoices.values() for line in h["lines"]}
    plan = []
    for given in lines:
        if not isinstance(given, dict) or given.get("id") not in by_id:
            raise ApiError(400, f"Recurring invoice line {given!r} was not found.")
        line = by_id[given["id"]]
        if "ihid" in given and int_or_none(given["ihid"]) != line["ihid"]:
            message = f"Line {line['id']} does not belong to recurring invoice {given['ihid']}."
            raise ApiError(400, message)
        plan.append((line, _line_changes(line, given)))
    for line, changes in plan:
        _apply(token, "RecurringInvoice/updatelines", line, changes)
    return [line for line, _ in plan]


# --- request handling --------------------------------------------------------------------------


async def _write(request: Request, token: _Token, tenant_slug: str, tail: list[str]) -> Response:
    _require(token, "invoices", write=True)
    refusal = control.write_refusal()
    if refusal:
        raise ApiError(400, refusal)
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "The request body is not valid JSON.") from None
    if not isinstance(body, list):
        raise ApiError(400, "The request body must be an array.")
    with _TENANTS.lock:
        tenant = _TENANTS.get(tenant_slug)
        if tail in (["updatelines"], ["lines"]):
            return JSONResponse(_update_lines(token, tenant, body))
        if tail:
            raise ApiError(404, "The requested resource was not found.")
        saved = [
            _summary(_update_header(token, tenant, h), True) for h in body if isinstance(h, dict)
        ]
        return JSONResponse(saved[0] if len(saved) == 1 else saved)


def _read(request: Request, token: _Token, resource: str, tail: list[str]) -> Response:
    area, key, records_of = _RESOURCES[resource]
    _require(token, area, write=False)
    with _TENANTS.lock:
        tenant = _TENANTS.get(token.slug)
        if not tail:
            render = None
            if resource == "recurringinvoice":
                include_lines = _flag(request, "includelines", False)
                render = functools.partial(_summary, include_lines=include_lines)
            return _listing(request, key, records_of(request, tenant), render)
        if len(tail) == 1:
            found = _one(tenant, resource, tail[0])
            if found is None:
                raise ApiError(404, f"No {resource} with id {tail[0]} was found.")
            return JSONResponse(found)
    raise ApiError(404, "The requested resource was not found.")


def _one(tenant: _Tenant, resource: str, record_id: str) -> dict | None:
    if resource == "recurringinvoice":
        header = tenant.invoices.get(int_or_none(record_id))
        return _summary(header, True) if header else None
    records = tenant.clients if resource == "client" else tenant.items
    return next((r for r in records if str(r["id"]) == record_id), None)


# resource path -> (scope area, list key, list filter)
_RESOURCES = {
    "client": ("customers", "clients", _clients),
    "item": ("items", "items", _items),
    "recurringinvoice": ("invoices", "invoices", _invoices),
}


async def _api(request: Request, parts: list[str]) -> Response:
    refused = await control.begin()
    if refused:
        return refused
    token = _bearer(request)
    limited = control.check_rate(CREDENTIALS[token.slug]["client_id"])
    if limited:
        return limited
    resource, tail = parts[0].lower() if parts else "", [p.lower() for p in parts[1:]]
    if resource not in _RESOURCES:
        raise ApiError(404, "The requested resource was not found.")
    if request.method == "POST" and resource == "recurringinvoice":
        return await _write(request, token, token.slug, tail)
    if request.method != "GET":
        message = f"The requested resource does not support http method '{request.method}'."
        raise ApiError(405, message)
    return _read(request, token, resource, tail)


@mangling
async def dispatch(request: Request) -> Response:
    parts = [p for p in request.path_params["path"].split("/") if p]
    lowered = [p.lower() for p in parts]
    try:
        if lowered == ["auth", "token"] and request.method == "POST":
            refused = await control.begin()
            return refused or await _token(request)
        if lowered[:1] == ["api"]:
            return await _api(request, parts[1:])
        return html_error(404)
    except ApiError as exc:
        if exc.status == 401:
            challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            return Response(status_code=401, headers=challenge)
        return _error(exc.status, exc.message)


def routes() -> list[BaseRoute]:
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Mount(MOUNT, routes=[Route("/{path:path}", dispatch, methods=methods)]),
        *control.routes(),
    ]
