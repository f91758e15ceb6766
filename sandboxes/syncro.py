"""Syncro (SyncroMSP) sandbox, mounted at /syncro: the real `https://{subdomain}.syncromsp.com/api/v1`
is served at `{base}/syncro/{subdomain}/api/v1`, one subdomain per partner slug.

Auth: `Authorization: Bearer {api token}` or `?api_key={api token}`. A token works only under
its own subdomain. It carries the permissions chosen for it in Syncro (the `permissions` control
key, default PERMISSIONS); each path needs the one named below.

Resources:
  GET  /customers        Customers - List/Search; include_disabled, business_name, firstname,
                         lastname, email, query, id / id[], sort ("business_name DESC"), page
  GET  /customers/{id}   Customers - View Detail                -> {"customer": {...}}
  GET  /products         Products - List/Search; name, sku, upc_code, query, sort, page
  GET  /products/{id}    Products - List/Search                 -> {"product": {...}}
  GET  /schedules        Recurring Invoices - List; customer_id, page (items carry `lines`)
  GET  /schedules/{id}   Recurring Invoices - List              -> {"schedule": {...}}
  PUT  /schedules/{id}/line_items/{line id}   Recurring Invoices - Edit; {"quantity": "12"}, a
                         number, or Rails-wrapped {"schedule_line_item": {...}}
                         -> {"schedule_line_item": {...}} (PATCH is taken too)
  POST /schedules/{id}/add_line_item      Recurring Invoices - Edit; {product_id | name, quantity}
  POST /schedules/{id}/remove_line_item   Recurring Invoices - Edit; {"schedule_line_item_id": n}
Lists answer `{"<key>": [...], "meta": {"total_pages", "total_entries", "per_page", "page"}}`,
25 a page (`page` 1-based; a page past the end is an empty list; total_pages is 1 when there
is nothing, as will_paginate counts). A line's `quantity` is a decimal string ("25.0").

The universe: customers are the non-vendor companies (`disabled` = inactive, left out unless
include_disabled=true), products the catalogue (`upc_code` = identifier), one schedule per
container (`paused` unless Active, frequency Monthly), one line item per uncancelled line (a
cancelled line is simply not on the schedule). A line Halo would calculate is billed per asset
here: `asset_type_id` 1, `recurring_type_id` "asset", and setting its quantity is refused.

Verbatim in the sources (docs/providers/syncro.md): the paths, permissions, parameters, field
names, the 25-record pages, the meta keys, 422 `{"error": [...]}` on line items and the 180
requests/minute per IP. Inferred: 401 `{"error": "Not authorized"}` for an unknown or foreign
token; 403 `{"error": "You do not have permission to perform this action (<permission>)"}`;
404 `{"error": "Not found"}` for an unknown id, an HTML 404 page for an unknown path or method
(Rails routing); 422 texts for a bad quantity and for asset lines; 400 for a body that is not
JSON; 5xx `{"error": "An unexpected error occurred on the server."}`; 429 `{"error": ...}` with
Retry-After (SandboxControl always sends it; a secondary source says Syncro does not); the
token's shape; no rate limit unless `rate_limit_per_minute` is set (real: ~180/min per IP).
"""

import datetime
import math
import random
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from sandboxes import data, psa_data
from sandboxes.ratelimit import (
    ApiError,
    PartnerStates,
    SandboxControl,
    html_error,
    int_or_none,
    mangling,
)
from sandboxes.ratelimit import token as make_token

MOUNT = "/syncro"
PER_PAGE = 25
CUSTOMERS_LIST = "Customers - List/Search"
CUSTOMERS_VIEW = "Customers - View Detail"
PRODUCTS_LIST = "Products - List/Search"
SCHEDULES_LIST = "Recurring Invoices - List"
SCHEDULES_EDIT = "Recurring Invoices - Edit"
PERMISSIONS = (CUSTOMERS_LIST, CUSTOMERS_VIEW, PRODUCTS_LIST, SCHEDULES_LIST, SCHEDULES_EDIT)
ASSET_TYPE_ID = 1  # "Syncro Device": a line counted from the customer's assets of this type
CALCULATED_REFUSAL = "Quantity is calculated from assets on this line and cannot be set"


def _credentials(slug: str) -> dict:
    # Syncro tokens look like "T" + hex + "-" + hex (seen in a public script); shape inferred
    value = f"T{make_token('syncro', slug, 'api-token', length=12)}-"
    value += make_token("syncro", slug, "api-token-2", length=25)
    return {"subdomain": slug, "api_path": f"{MOUNT}/{slug}/api/v1", "api_token": value}


CREDENTIALS = {p.slug: _credentials(p.slug) for p in data.PARTNERS.values()}
DEMO_CREDENTIALS = CREDENTIALS[data.PARTNERS[data.DEMO_PARTNER_KEY].slug]
_TOKEN_SLUGS = {c["api_token"]: slug for slug, c in CREDENTIALS.items()}


def partner_credentials(base_url: str, slug: str) -> dict:
    """A partner's subdomain, API token and full API URL (`…/syncro/{subdomain}/api/v1`)."""
    return {**CREDENTIALS[slug], "api_url": base_url.rstrip("/") + CREDENTIALS[slug]["api_path"]}


def demo_credentials(base_url: str) -> dict:
    return partner_credentials(base_url, data.PARTNERS[data.DEMO_PARTNER_KEY].slug)


def connection_fields(base_url: str, slug: str = "demo") -> tuple[dict, dict]:
    """What a person types into TrueUp's connect form for this partner: (settings, secrets)."""
    c = partner_credentials(base_url, slug)
    return {"api_url": c["api_url"]}, {"api_token": c["api_token"]}


# --- wire format -------------------------------------------------------------------------------

_PRODUCTS = {p.id: p for p in psa_data.catalogue()}
_FIRST_NAMES = (
    "Alicia", "Brandon", "Carmen", "Derek", "Elena", "Felix", "Grace", "Hector", "Irene", "Jonah",
    "Keisha", "Liam", "Monica", "Nathan", "Olivia", "Priya", "Quentin", "Rosa", "Samuel", "Tara",
)  # fmt: skip
_LAST_NAMES = (
    "Abbott", "Becker", "Chen", "Diaz", "Eriksen", "Fischer", "Gupta", "Holloway", "Ibarra",
    "Jensen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Patel", "Reyes", "Silva",
)  # fmt: skip
_CITIES = (("Springfield", "IL", "627"), ("Madison", "WI", "537"), ("Boulder", "CO", "803"),
           ("Raleigh", "NC", "276"), ("Tacoma", "WA", "984"), ("Dayton", "OH", "454"))  # fmt: skip

_CUSTOMER_NULLS = (
    "mobile", "pdf_url", "address_2", "latitude", "longitude", "notes", "location_name",
    "location_id", "online_profile_url", "tax_rate_id", "notification_email", "invoice_cc_emails",
    "invoice_term_id", "referred_by", "ref_customer_id",
)  # fmt: skip
_PRODUCT_NULLS = (
    "condition", "warranty", "sort_order", "reorder_at", "discount_percent", "warranty_template_id",
    "qb_item_id", "desired_stock_level", "notes", "tax_rate_id", "physical_location",
    "long_description",
)  # fmt: skip


def _instant(day: datetime.date, rng: random.Random) -> str:
    clock = f"{rng.randint(8, 17):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    return f"{day.isoformat()}T{clock}.{rng.randint(0, 999):03d}Z"


def _customer(c: psa_data.PSACompanyRecord, slug: str) -> dict:
    rng = random.Random(f"trueup-sandbox/syncro/{slug}/customer/{c.id}")
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    city, state, zip_prefix = rng.choice(_CITIES)
    created = data.UNIVERSE_DATE - datetime.timedelta(days=rng.randint(200, 2500))
    updated = data.UNIVERSE_DATE - datetime.timedelta(days=rng.randint(1, 150))
    fullname = f"{first} {last}"
    return {
        "id": c.id,
        "firstname": first,
        "lastname": last,
        "fullname": fullname,
        "business_name": c.name,
        "email": f"{first}.{last}@{c.identifier}.example".lower(),
        "phone": f"555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
        "created_at": _instant(created, rng),
        "updated_at": _instant(updated, rng),
        "address": f"{rng.randint(10, 9999)} {rng.choice(('Main', 'Oak', 'Market'))} St",
        "city": city,
        "state": state,
        "zip": f"{zip_prefix}{rng.randint(10, 99)}",
        "get_sms": False,
        "opt_out": False,
        "disabled": not c.active,
        "no_email": False,
        "properties": {},
        "business_and_full_name": f"{c.name} - {fullname}",
        "business_then_name": c.name,
        "contacts": [],
        **dict.fromkeys(_CUSTOMER_NULLS),
    }


def _product(p: psa_data.Product) -> dict:
    return {
        "id": p.id,
        "price_cost": p.unit_cost,
        "price_retail": p.unit_price,
        "description": p.name,
        "maintain_stock": False,
        "name": p.name,
        "quantity": 0,
        "disabled": not p.active,
        "taxable": True,
        "product_category": p.category,
        "category_path": p.category,
        "upc_code": p.identifier,
        "price_wholesale": 0,
        "serialized": False,
        "vendor_ids": [],
        "location_quantities": [],
        "photos": [],
        **dict.fromkeys(_PRODUCT_NULLS),
    }


def _decimal_text(value: Decimal) -> str:
    """A quantity as Rails renders a decimal column: "25.0", "2.5", "9.99"."""
    if value == value.to_integral_value():
        return f"{int(value)}.0"
    return format(value.normalize(), "f")


def _line(schedule_id: int, line_id: int, product, quantity: Decimal, position: int, **kw) -> dict:
    price = kw.get("price", product.unit_price if product else 0.0)
    cost = kw.get("cost", product.unit_cost if product else 0.0)
    counted = kw.get("calculated", False)
    return {
        "id": line_id,
        "cost_cents": round(cost * 100),
        "description": kw.get("description") or (product.name if product else ""),
        "name": kw.get("name") or (product.name if product else ""),
        "position": position,
        "product_id": product.id if product else None,
        "quantity": _decimal_text(quantity),
        "retail_cents": round(price * 100),
        "schedule_id": schedule_id,
        "taxable": False,
        "user_id": 1,
        "price_cost": cost,
        "price_retail": price,
        "product_category": product.category if product else None,
        "asset_type_id": ASSET_TYPE_ID if counted else None,
        "recurring_type_id": "asset" if counted else None,
        "device_ids": [],
        "one_time_charge": False,
    }


def _schedule(c: psa_data.BillingContainer, account_id: int) -> dict:
    next_month = (data.UNIVERSE_DATE.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
    lines = []
    for position, line in enumerate(c.lines, 1):
        if line.cancelled_date is None:  # a cancelled line is simply not on the schedule
            product, quantity = _PRODUCTS[line.product_id], Decimal(line.quantity)
            found = {
                "price": line.unit_price,
                "cost": line.unit_cost,
                "calculated": line.calculated,
            }
            lines.append(_line(c.id, line.id, product, quantity, position, **found))
    return {
        "id": c.id,
        "account_id": account_id,
        "customer_id": c.company_id,
        "email_customer": True,
        "frequency": "Monthly",
        "name": c.name,
        "next_run": f"{next_month.isoformat()}T00:00:00.000Z",
        "snail_mail": False,
        "charge_mop": False,
        "subtotal": 0,
        "invoice_unbilled_ticket_charges": False,
        "paused": c.status != "Active",
        "last_invoice_paid": c.status == "Active" or None,
        "lines": lines,
    }


def _rendered(schedule: dict) -> dict:
    total = sum(
        Decimal(line["quantity"]) * Decimal(str(line["price_retail"])) for line in schedule["lines"]
    )
    return {**schedule, "subtotal": float(round(total, 2))}


# --- state -------------------------------------------------------------------------------------


@dataclass
class _Account:
    customers: list[dict]
    products: list[dict]
    schedules: dict[int, dict]  # schedule id -> schedule with its lines
    next_line_id: int


def _build(slug: str) -> _Account:
    universe = psa_data.universe(slug)
    served = sorted(
        (c for c in universe.companies if c.company_type != "Vendor"), key=lambda c: c.id
    )
    account_id = int(make_token("syncro", slug, "account", length=5, alphabet="0123456789")) + 1
    return _Account(
        customers=[_customer(c, slug) for c in served],
        products=[_product(p) for p in universe.products],
        schedules={c.id: _schedule(c, account_id) for c in universe.containers},
        next_line_id=max((line.id for line in universe.lines()), default=10_000) + 1,
    )


_ACCOUNTS: PartnerStates[_Account] = PartnerStates(_build)


def reset() -> None:
    _ACCOUNTS.clear()
    control.reset()


# --- errors ------------------------------------------------------------------------------------


def _error(status: int, message: str) -> JSONResponse:
    """Syncro's error body: a list of messages for a refused write (422), else one string."""
    return JSONResponse({"error": [message] if status == 422 else message}, status_code=status)


control = SandboxControl("syncro", _error, reset, {"permissions": list(PERMISSIONS)})


def _authenticate(request: Request, subdomain: str) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    given = value.strip() if scheme.lower() == "bearer" else ""
    given = given or request.query_params.get("api_key", "").strip()
    if _TOKEN_SLUGS.get(given) != subdomain:
        raise ApiError(401, "Not authorized")
    return given


def _require(permission: str) -> None:
    if permission not in control.fault("permissions"):
        raise ApiError(403, f"You do not have permission to perform this action ({permission})")


# --- lists -------------------------------------------------------------------------------------


def _listing(request: Request, key: str, records: list[dict], render=None) -> Response:
    page = int_or_none(request.query_params.get("page"))
    page = page if page and page > 0 else 1
    total = len(records)
    chosen = records[(page - 1) * PER_PAGE : page * PER_PAGE]
    meta = {
        "total_pages": max(1, math.ceil(total / PER_PAGE)),
        "total_entries": total,
        "per_page": PER_PAGE,
        "page": page,
    }
    return JSONResponse({key: [render(r) if render else r for r in chosen], "meta": meta})


def _like(request: Request, records: list[dict], param: str, *fields: str) -> list[dict]:
    text = request.query_params.get(param, "").strip().casefold()
    if not text:
        return records
    return [r for r in records if any(text in str(r.get(f) or "").casefold() for f in fields)]


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").strip().lower() in ("true", "1", "yes")


def _sorted(request: Request, records: list[dict]) -> list[dict]:
    field, _, direction = request.query_params.get("sort", "").strip().partition(" ")
    if not field or not records or field not in records[0]:
        return records
    return sorted(
        records,
        key=lambda r: (r[field] is None, str(r[field] or "").casefold()),
        reverse=direction.strip().upper() == "DESC",
    )


def _ids(request: Request) -> set[str]:
    values = request.query_params.getlist("id") + request.query_params.getlist("id[]")
    return {part.strip() for v in values for part in v.split(",") if part.strip()}


def _customers(request: Request, account: _Account) -> list[dict]:
    records = account.customers
    if not _flag(request, "include_disabled"):
        records = [r for r in records if not r["disabled"]]
    wanted = _ids(request)
    if wanted:
        records = [r for r in records if str(r["id"]) in wanted]
    for param in ("business_name", "firstname", "lastname", "email"):
        records = _like(request, records, param, param)
    records = _like(request, records, "query", "business_name", "fullname", "email", "phone")
    return _sorted(request, records)


def _products(request: Request, account: _Account) -> list[dict]:
    records = _like(request, account.products, "name", "name")
    records = _like(request, records, "sku", "upc_code")
    records = _like(request, records, "upc_code", "upc_code")
    records = _like(request, records, "query", "name", "description", "upc_code")
    wanted = _ids(request)
    if wanted:
        records = [r for r in records if str(r["id"]) in wanted]
    return _sorted(request, records)


def _schedules(request: Request, account: _Account) -> list[dict]:
    records = sorted(account.schedules.values(), key=lambda s: s["id"])
    customer = request.query_params.get("customer_id", "").strip()
    return [s for s in records if str(s["customer_id"]) == customer] if customer else records


def _one(records, record_id: str) -> dict:
    found = next((r for r in records if str(r["id"]) == record_id), None)
    if found is None:
        raise ApiError(404, "Not found")
    return found


# --- writes ------------------------------------------------------------------------------------


async def _body(request: Request) -> dict:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "The request body is not valid JSON.") from None
    if isinstance(body, dict) and isinstance(body.get("schedule_line_item"), dict):
        return body["schedule_line_item"]
    return body if isinstance(body, dict) else {"_value": body}


def _quantity(value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ApiError(422, "Quantity is not a number")
    try:
        quantity = Decimal(str(value).strip())
    except InvalidOperation:
        raise ApiError(422, "Quantity is not a number") from None
    if not quantity.is_finite():
        raise ApiError(422, "Quantity is not a number")
    if quantity < 0:
        raise ApiError(422, "Quantity must be greater than or equal to 0")
    return quantity


def _log(slug: str, method: str, line: dict, changes: dict) -> None:
    control.log_write(
        partner=slug,
        method=method,
        resource="schedules/line_items",
        id=line["id"],
        schedule_id=line["schedule_id"],
        changes=changes,
    )


def _refuse_writes() -> None:
    refusal = control.write_refusal()
    if refusal:
        raise ApiError(422, refusal)


def _update_line(slug: str, method: str, line: dict, given: dict) -> dict:
    if "quantity" not in given:
        return line
    if line["asset_type_id"] is not None:
        raise ApiError(422, CALCULATED_REFUSAL)
    new = _quantity(given["quantity"])
    old = Decimal(line["quantity"])
    if control.fault("ignore_writes"):
        return {**line, "quantity": _decimal_text(new)}
    line["quantity"] = _decimal_text(new)
    if new != old:
        _log(slug, method, line, {"quantity": [float(old), float(new)]})
    return line


def _add_line(slug: str, account: _Account, schedule: dict, given: dict) -> dict:
    product = _PRODUCTS.get(int_or_none(given.get("product_id")))
    if given.get("product_id") not in (None, "") and product is None:
        raise ApiError(422, "Product must exist")
    if product is None and not str(given.get("name") or "").strip():
        raise ApiError(422, "Name can't be blank")
    quantity = _quantity(given.get("quantity", 0))
    position = max((line["position"] for line in schedule["lines"]), default=0) + 1
    prices = {}
    for key, name in (("price", "price_retail"), ("cost", "price_cost")):
        if name in given:
            try:
                prices[key] = float(given[name])
            except (TypeError, ValueError):
                raise ApiError(
                    422, f"{name.replace('_', ' ').capitalize()} is not a number"
                ) from None
    line = _line(
        schedule["id"],
        account.next_line_id,
        product,
        quantity,
        position,
        name=str(given.get("name") or "").strip(),
        description=str(given.get("description") or "").strip(),
        **prices,
    )
    if control.fault("ignore_writes"):
        return line
    account.next_line_id += 1
    schedule["lines"].append(line)
    _log(slug, "POST", line, {"created": [None, float(quantity)]})
    return line


def _remove_line(slug: str, schedule: dict, given: dict) -> None:
    line = _one(schedule["lines"], str(given.get("schedule_line_item_id", given.get("_value"))))
    if control.fault("ignore_writes"):
        return
    schedule["lines"].remove(line)
    _log(slug, "POST", line, {"deleted": [float(Decimal(line["quantity"])), None]})


# --- request handling --------------------------------------------------------------------------


# (method, path shape) -> (route, permission it needs); "#" stands for a numeric id
_ROUTES = {
    ("GET", "customers"): ("customers", CUSTOMERS_LIST),
    ("GET", "customers/#"): ("customer", CUSTOMERS_VIEW),
    ("GET", "products"): ("products", PRODUCTS_LIST),
    ("GET", "products/#"): ("product", PRODUCTS_LIST),
    ("GET", "schedules"): ("schedules", SCHEDULES_LIST),
    ("GET", "schedules/#"): ("schedule", SCHEDULES_LIST),
    ("PUT", "schedules/#/line_items/#"): ("update_line", SCHEDULES_EDIT),
    ("PATCH", "schedules/#/line_items/#"): ("update_line", SCHEDULES_EDIT),
    ("POST", "schedules/#/add_line_item"): ("add_line", SCHEDULES_EDIT),
    ("POST", "schedules/#/remove_line_item"): ("remove_line", SCHEDULES_EDIT),
}


async def _api(request: Request, subdomain: str, parts: list[str]) -> Response:
    refused = await control.begin()
    if refused:
        return refused
    shape = "/".join("#" if p.isascii() and p.isdigit() else p for p in parts)
    route, permission = _ROUTES.get((request.method, shape), (None, None))
    if subdomain not in CREDENTIALS or route is None:
        return html_error(404)  # Rails routing: an unknown path or method is a 404 page
    token = _authenticate(request, subdomain)
    limited = control.check_rate(token)
    if limited:
        return limited
    _require(permission)
    if permission != SCHEDULES_EDIT:
        with _ACCOUNTS.lock:
            return _read(request, _ACCOUNTS.get(subdomain), route, parts)
    _refuse_writes()
    given = await _body(request)
    with _ACCOUNTS.lock:
        account = _ACCOUNTS.get(subdomain)
        schedule = account.schedules.get(int(parts[1]))
        if schedule is None:
            raise ApiError(404, "Not found")
        if route == "update_line":
            line = _one(schedule["lines"], parts[3])
            saved = _update_line(subdomain, request.method, line, given)
            return JSONResponse({"schedule_line_item": saved})
        if route == "add_line":
            return JSONResponse(
                {"schedule_line_item": _add_line(subdomain, account, schedule, given)}
            )
        _remove_line(subdomain, schedule, given)
        return JSONResponse({"message": "Line item removed"})


def _read(request: Request, account: _Account, route: str, parts: list[str]) -> Response:
    if route == "customers":
        return _listing(request, "customers", _customers(request, account))
    if route == "products":
        return _listing(request, "products", _products(request, account))
    if route == "schedules":
        return _listing(request, "schedules", _schedules(request, account), _rendered)
    if route == "customer":
        return JSONResponse({"customer": _one(account.customers, parts[1])})
    if route == "product":
        return JSONResponse({"product": _one(account.products, parts[1])})
    schedule = account.schedules.get(int(parts[1]))
    if schedule is None:
        raise ApiError(404, "Not found")
    return JSONResponse({"schedule": _rendered(schedule)})


@mangling
async def dispatch(request: Request) -> Response:
    parts = [p for p in request.path_params["path"].split("/") if p]
    try:
        if len(parts) >= 3 and parts[1:3] == ["api", "v1"]:
            return await _api(request, parts[0], parts[3:])
        return html_error(404)
    except ApiError as exc:
        return _error(exc.status, exc.message)


def routes() -> list[BaseRoute]:
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Mount(MOUNT, routes=[Route("/{path:path}", dispatch, methods=methods)]),
        *control.routes(),
    ]
