"""ConnectWise PSA (Manage) REST 3.0 sandbox, mounted at /connectwise.

A site URL is `{base}/connectwise`; the API root is `{site}/{codebase}/apis/3.0/` with codebase
`v4_6_release` (the alias integrations hard-code) or CURRENT_CODEBASE (what
`GET {site}/login/companyinfo/{companyId}` returns, with a trailing slash); any other codebase
gets IIS's 404 page, which is how a client learns that the codebase moved.

Served (GET lists take conditions, childConditions, orderBy, fields, page, pageSize; `/count`
answers `{"count": n}`; GET `/{id}` one record):
  company/companies, procurement/catalog, finance/agreements/types, finance/agreements,
  finance/agreements/{id}/additions (GET, POST) and .../additions/{id} (GET, PATCH, PUT, DELETE),
  system/info.

Auth: Basic `companyId+publicKey:privateKey` (401 when wrong) and a `clientId` header holding a
GUID (400 when missing or malformed; any GUID is accepted, as a public integration's is).
Paging: `page`/`pageSize` (default 25, capped at 1000, 1-based); a `Link` header with rel
first/prev/next/last whose URLs end in `pageSize=N&page=P`; the header
`pagination-type: forward-only` switches to `pageId` (records with id > pageId) and a
rel="next" link only. Conditions: `= != <> < <= > >= like contains in (...)`, `not like`,
`not contains`, `not in`, `and`/`or`/`not`, parentheses, "strings" (case-insensitive), numbers,
true/false/null, [datetimes], paths like `company/id` or `types/name` (any element of an array).
Writes: PATCH takes a JSON-Patch list (`add`/`replace`/`remove`; path `quantity` or
`/quantity`, case-insensitive; numbers may come as numeric strings) and returns the addition.

Inferred where the research is silent or [I]: error bodies follow ErrorResponseMessage
`{"code", "message", "errors": [{"code", "message", "resource", "field"}]}` with codes
InvalidObject/BadRequest (400), Unauthorized (401), NotFound (404), MethodNotAllowed (405),
TooManyRequests (429), UnexpectedServerError (5xx); fields whose value is null are left out of
responses; additions of a cancelled agreement, or with a cancelledDate that has passed, and
negative quantities are refused with InvalidObject; billedQuantity = quantity - lessIncluded;
no rate limit unless `rate_limit_per_minute` is set (ConnectWise publishes no number).
"""

import copy
import datetime
import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from sandboxes import data, psa_data
from sandboxes.ratelimit import (
    PartnerStates,
    SandboxControl,
    basic_auth,
    guid,
    html_error,
    mangling,
    token,
)

MOUNT = "/connectwise"
CURRENT_CODEBASE = "v2025_1"
CODEBASES = ("v4_6_release", CURRENT_CODEBASE)
VERSION = "v2025.1.106853"
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 1000
API_MEMBER = "TrueUpAPI"

_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _credentials(slug: str) -> dict:
    return {
        "site_path": MOUNT,
        "codebase": CURRENT_CODEBASE,
        "company_id": f"{slug}msp",
        "public_key": token("connectwise", slug, "public", length=16, alphabet=_KEY_ALPHABET),
        "private_key": token("connectwise", slug, "private", length=16, alphabet=_KEY_ALPHABET),
        "client_id": guid("connectwise", slug, "client"),
    }


CREDENTIALS = {p.slug: _credentials(p.slug) for p in data.PARTNERS.values()}
DEMO_CREDENTIALS = CREDENTIALS[data.PARTNERS[data.DEMO_PARTNER_KEY].slug]


def partner_credentials(base_url: str, slug: str) -> dict:
    """A partner's credentials with `site` for a sandbox served at `base_url`."""
    return {**CREDENTIALS[slug], "site": base_url.rstrip("/") + MOUNT}


def demo_credentials(base_url: str) -> dict:
    return partner_credentials(base_url, data.PARTNERS[data.DEMO_PARTNER_KEY].slug)


def connection_fields(base_url: str, slug: str = "demo") -> tuple[dict, dict]:
    """What a person types into TrueUp's connect form for this partner: (settings, secrets)."""
    c = partner_credentials(base_url, slug)
    return (
        {"site": c["site"], "codebase": "", "client_id": c["client_id"]},
        {key: c[key] for key in ("company_id", "public_key", "private_key")},
    )


# --- wire format -------------------------------------------------------------------------------

_TYPE_IDS = {"Customer": (1, "Client"), "Prospect": (2, "Prospect"), "Vendor": (5, "Vendor")}
_MONTHLY = {"id": 2, "name": "Monthly"}


def _when(day: datetime.date | datetime.datetime | None) -> str | None:
    if day is None:
        return None
    if not isinstance(day, datetime.datetime):
        day = datetime.datetime.combine(day, datetime.time(), datetime.UTC)
    return day.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return _when(datetime.datetime.now(datetime.UTC))


def _info(record_id: int) -> dict:
    updated = data.UNIVERSE_DATE - datetime.timedelta(days=record_id % 400)
    return {"lastUpdated": _when(updated), "updatedBy": "jsmith"}


def _company(c: psa_data.PSACompanyRecord) -> dict:
    type_id, type_name = _TYPE_IDS[c.company_type]
    return {
        "id": c.id,
        "identifier": c.identifier,
        "name": c.name,
        "status": {"id": 1, "name": "Active"} if c.active else {"id": 2, "name": "Inactive"},
        "types": [{"id": type_id, "name": type_name}],
        "phoneNumber": "",
        "faxNumber": "",
        "website": "",
        "territory": {"id": 1, "name": "Main"},
        "accountNumber": "",
        "dateAcquired": _when(data.UNIVERSE_DATE - datetime.timedelta(days=c.id % 2000)),
        "deletedFlag": False,
        "mobileGuid": guid("connectwise", "company", str(c.id)),
        "_info": _info(c.id),
    }


def _catalog_item(p: psa_data.Product) -> dict:
    return {
        "id": p.id,
        "identifier": p.identifier,
        "description": p.name,
        "customerDescription": p.name,
        "inactiveFlag": not p.active,
        "category": {"id": 10 + psa_data.CATEGORY_NAMES.index(p.category), "name": p.category},
        "type": {"id": 3, "name": "Service"},
        "productClass": "Service",
        "unitOfMeasure": {"id": 1, "name": "Each"},
        "price": p.unit_price,
        "cost": p.unit_cost,
        "taxableFlag": True,
        "recurringFlag": True,
        "recurringRevenue": p.unit_price,
        "recurringCost": p.unit_cost,
        "recurringOneTimeFlag": False,
        "recurringBillCycle": _MONTHLY,
        "recurringCycleType": "ContractYear",
        "manufacturerPartNumber": p.identifier,
        "vendorSku": p.identifier,
        "_info": _info(p.id),
    }


def _agreement_type(type_id: int, name: str) -> dict:
    return {
        "id": type_id,
        "name": name,
        "defaultFlag": type_id == 1,
        "inactiveFlag": False,
        "prefixSuffixOption": "Prefix",
        "billingCycle": _MONTHLY,
        "billTime": "Billable",
        "prorateFlag": False,
        "_info": _info(type_id),
    }


def _company_ref(c: psa_data.PSACompanyRecord) -> dict:
    return {"id": c.id, "identifier": c.identifier, "name": c.name}


def _agreement(a: psa_data.BillingContainer, company: psa_data.PSACompanyRecord) -> dict:
    cancelled = a.status == "Cancelled"
    return {
        "id": a.id,
        "name": a.name,
        "type": {"id": _TYPE_ID_BY_NAME[a.type_name], "name": a.type_name},
        "company": _company_ref(company),
        "agreementStatus": a.status,
        "cancelledFlag": cancelled,
        "dateCancelled": _when(a.end_date) if cancelled else None,
        "reasonCancelled": "Customer cancelled" if cancelled else None,
        "startDate": _when(a.start_date),
        "endDate": _when(a.end_date),
        "noEndingDateFlag": False,
        "billingCycle": _MONTHLY,
        "billAmount": 0.0,
        "billOneTimeFlag": False,
        "billTime": "Billable",
        "billExpenses": "Billable",
        "billProducts": "Billable",
        "prorateFlag": False,
        "applicationUnits": "Amount",
        "applicationLimit": 0.0,
        "periodType": "Current",
        "customerPO": "",
        "parentAgreement": None,
        "_info": _info(a.id),
    }


def _addition(line: psa_data.BillingLine, status: str, sequence: int) -> dict:
    product = _PRODUCTS[line.product_id]
    addition = {
        "id": line.id,
        "product": {"id": product.id, "identifier": product.identifier},
        "quantity": float(line.quantity),
        "lessIncluded": float(line.less_included),
        "unitPrice": line.unit_price,
        "unitCost": line.unit_cost,
        "billCustomer": "Billable",
        "effectiveDate": _when(line.effective_date),
        "cancelledDate": _when(line.cancelled_date),
        "taxableFlag": True,
        "invoiceDescription": product.name,
        "purchaseItemFlag": False,
        "specialOrderFlag": False,
        "agreementId": line.container_id,
        "description": product.name,
        "uom": "Each",
        "sequenceNumber": float(sequence),
        "prorateCost": 0.0,
        "proratePrice": 0.0,
        "extendedProrateCost": 0.0,
        "extendedProratePrice": 0.0,
        "prorateCurrentPeriodFlag": False,
        "agreementStatus": status,
        "_info": _info(line.id),
    }
    _refresh(addition)
    return addition


def _refresh(addition: dict) -> None:
    """Recompute the fields ConnectWise derives from quantity, lessIncluded and prices."""
    billed = max(0.0, addition["quantity"] - addition["lessIncluded"])
    addition["billedQuantity"] = billed
    addition["extPrice"] = round(addition["unitPrice"] * billed, 2)
    addition["extCost"] = round(addition["unitCost"] * billed, 2)
    addition["margin"] = round(addition["extPrice"] - addition["extCost"], 2)


def _without_nulls(value):
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


_PRODUCTS = {p.id: p for p in psa_data.catalogue()}
_TYPE_ID_BY_NAME = {name: i for i, name in enumerate(psa_data.CONTAINER_TYPES, start=1)}

# --- state -------------------------------------------------------------------------------------


@dataclass
class _Tenant:
    companies: list[dict]
    catalog: list[dict]
    types: list[dict]
    agreements: dict[int, dict]
    additions: dict[int, dict[int, dict]]  # agreement id -> addition id -> addition
    next_addition_id: int


def _build(slug: str) -> _Tenant:
    universe = psa_data.universe(slug)
    companies = {c.id: c for c in universe.companies}
    agreements = {a.id: _agreement(a, companies[a.company_id]) for a in universe.containers}
    additions = {
        a.id: {line.id: _addition(line, a.status, i) for i, line in enumerate(a.lines, 1)}
        for a in universe.containers
    }
    return _Tenant(
        companies=[_company(c) for c in sorted(universe.companies, key=lambda c: c.id)],
        catalog=[_catalog_item(p) for p in universe.products],
        types=[_agreement_type(i, n) for n, i in _TYPE_ID_BY_NAME.items()],
        agreements=agreements,
        additions=additions,
        next_addition_id=max((line.id for line in universe.lines()), default=10_000) + 1,
    )


_TENANTS: PartnerStates[_Tenant] = PartnerStates(_build)


def reset() -> None:
    _TENANTS.clear()
    control.reset()


# --- errors ------------------------------------------------------------------------------------

_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Security",
    404: "NotFound",
    405: "MethodNotAllowed",
    429: "TooManyRequests",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, errors=None):
        super().__init__(message)
        self.status, self.message, self.code, self.errors = status, message, code, errors


def _error(status: int, message: str, code: str | None = None, errors=None) -> JSONResponse:
    body = {"code": code or _CODES.get(status, "UnexpectedServerError"), "message": message}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status)


def _invalid(resource: str, field_name: str, message: str) -> ApiError:
    errors = [
        {"code": "InvalidField", "message": message, "resource": resource, "field": field_name}
    ]
    return ApiError(400, f"{resource} object is invalid", "InvalidObject", errors)


control = SandboxControl("connectwise", _error, reset)

# --- conditions --------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.|"")*"|'(?:[^'\\]|\\.|'')*')
    | (?P<date>\[[^\]]*\])
    | (?P<op>!=|<>|<=|>=|=|<|>)
    | (?P<punct>[(),])
    | (?P<number>-?\d+(?:\.\d+)?(?![\w/]))
    | (?P<word>[A-Za-z_][\w/]*)
    )""",
    re.VERBOSE,
)
_SYMBOL_OPS = {"=": "eq", "!=": "ne", "<>": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if not match:
            raise ApiError(400, f"Invalid conditions near '{text[position : position + 20]}'")
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    return tokens


def _values(record, path: list[str]) -> list:
    """The values at `path` (field names case-insensitive); arrays contribute every element."""
    current = [record]
    for part in path:
        found = []
        for item in current:
            if not isinstance(item, dict):
                found.append(None)
                continue
            key = (
                part if part in item else next((k for k in item if k.lower() == part.lower()), None)
            )
            value = item.get(key) if key else None
            found.extend(value if isinstance(value, list) else [value])
        current = found
    return current or [None]


class _ConditionParser:
    """Recursive descent over the conditions grammar; builds a predicate on wire records."""

    def __init__(self, text: str, fields: set[str]):
        self.tokens = _tokens(text)
        self.position = 0
        self.fields = {f.lower() for f in fields}

    def parse(self):
        predicate = self._or()
        if self.position != len(self.tokens):
            raise ApiError(400, f"Unexpected '{self.tokens[self.position][1]}' in conditions")
        return predicate

    def _peek(self) -> tuple[str, str]:
        return self.tokens[self.position] if self.position < len(self.tokens) else ("end", "")

    def _take(self) -> tuple[str, str]:
        current = self._peek()
        if current[0] == "end":
            raise ApiError(400, "Conditions end unexpectedly")
        self.position += 1
        return current

    def _keyword(self, *words: str) -> bool:
        kind, text = self._peek()
        if kind == "word" and text.lower() in words:
            self.position += 1
            return True
        return False

    def _or(self):
        parts = [self._and()]
        while self._keyword("or"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else lambda r: any(p(r) for p in parts)

    def _and(self):
        parts = [self._unary()]
        while self._keyword("and"):
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else lambda r: all(p(r) for p in parts)

    def _unary(self):
        if self._keyword("not"):
            inner = self._unary()
            return lambda r: not inner(r)
        if self._peek() == ("punct", "("):
            self._take()
            inner = self._or()
            if self._take() != ("punct", ")"):
                raise ApiError(400, "Missing ')' in conditions")
            return inner
        return self._comparison()

    def _comparison(self):
        kind, name = self._take()
        if kind != "word":
            raise ApiError(400, f"Expected a field name but found '{name}'")
        path = name.split("/")
        if self.fields and path[0].lower() not in self.fields:
            raise ApiError(400, f"Unknown field '{name}' in conditions")
        negate = self._keyword("not")
        kind, text = self._take()
        if kind == "op" and not negate:
            op = _SYMBOL_OPS[text]
        elif kind == "word" and text.lower() in ("like", "contains", "in"):
            op = text.lower()
        else:
            raise ApiError(400, f"Expected an operator after '{name}' but found '{text}'")
        expected = self._list() if op == "in" else self._value()
        pairs = [("eq", e) for e in expected] if op == "in" else [(op, expected)]

        def test(record: dict) -> bool:
            values = _values(record, path)
            found = any(psa_data.compare(v, o, e) for v in values for o, e in pairs)
            return found != negate

        return test

    def _list(self) -> list:
        if self._take() != ("punct", "("):
            raise ApiError(400, "Expected '(' after in")
        items = [self._value()]
        while self._peek() == ("punct", ","):
            self._take()
            items.append(self._value())
        if self._take() != ("punct", ")"):
            raise ApiError(400, "Expected ')' to close the in list")
        return items

    def _value(self):
        kind, text = self._take()
        if kind == "string":
            quote = text[0]
            return text[1:-1].replace(quote * 2, quote).replace("\\" + quote, quote)
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "date":
            when = psa_data.parse_instant(text[1:-1].strip())
            if when is None:
                raise ApiError(400, f"Invalid date {text} in conditions")
            return when
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if kind == "word" and text.lower() == "null":
            return None
        raise ApiError(400, f"Expected a value but found '{text}'")


# --- list queries ------------------------------------------------------------------------------


def _filtered(request: Request, records: list[dict]) -> list[dict]:
    fields = set(records[0]) if records else set()
    for name in ("conditions", "childConditions"):
        text = request.query_params.get(name, "").strip()
        if text:
            predicate = _ConditionParser(text, fields).parse()
            records = [r for r in records if predicate(r)]
    return _ordered(request.query_params.get("orderBy", ""), records)


def _sort_key(value):
    if value is None:
        return (0, "")
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value).casefold())


def _ordered(order_by: str, records: list[dict]) -> list[dict]:
    records = sorted(records, key=lambda r: r["id"])
    for clause in reversed([c.strip() for c in order_by.split(",") if c.strip()]):
        name, _, direction = clause.partition(" ")
        path = name.split("/")
        descending = direction.strip().lower() == "desc"
        records.sort(key=lambda r: _sort_key(_values(r, path)[0]), reverse=descending)
    return records


def _project(record: dict, fields: str) -> dict:
    if not fields.strip():
        return record
    projected: dict = {}
    for name in (f.strip() for f in fields.split(",") if f.strip()):
        source, target, parts = record, projected, name.split("/")
        for part in parts[:-1]:
            source = source.get(part) if isinstance(source, dict) else None
            target = target.setdefault(part, {})
        if isinstance(source, dict) and parts[-1] in source:
            target[parts[-1]] = source[parts[-1]]
    return projected


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"The value '{raw}' is not valid for {name}.") from None


def _link(request: Request, **paging) -> str:
    params = [
        (k, v)
        for k, v in request.query_params.multi_items()
        if k not in ("page", "pageSize", "pageId")
    ]
    params += list(paging.items())
    return f"{request.url.scheme}://{request.url.netloc}{request.url.path}?{urlencode(params)}"


def _list_response(request: Request, records: list[dict]) -> Response:
    records = _filtered(request, records)
    size = min(max(_int_param(request, "pageSize", DEFAULT_PAGE_SIZE), 1), MAX_PAGE_SIZE)
    links = []
    if request.headers.get("pagination-type", "").lower() == "forward-only":
        after = _int_param(request, "pageId", 0)
        remaining = [r for r in sorted(records, key=lambda r: r["id"]) if r["id"] > after]
        page_records = remaining[:size]
        if len(remaining) > size:
            links.append((_link(request, pageSize=size, pageId=page_records[-1]["id"]), "next"))
    else:
        page = max(_int_param(request, "page", 1), 1)
        last = max(1, -(-len(records) // size))
        page_records = records[(page - 1) * size : page * size]
        if page > 1:
            links += [(_link(request, pageSize=size, page=1), "first")]
            links += [(_link(request, pageSize=size, page=min(page - 1, last)), "prev")]
        if page < last:
            links += [(_link(request, pageSize=size, page=page + 1), "next")]
            links += [(_link(request, pageSize=size, page=last), "last")]
    fields = request.query_params.get("fields", "")
    body = [_without_nulls(_project(r, fields)) for r in page_records]
    headers = {"Link": ", ".join(f'<{url}>; rel="{rel}"' for url, rel in links)} if links else {}
    return JSONResponse(body, headers=headers)


# --- additions ---------------------------------------------------------------------------------

_NUMBER_FIELDS = ("quantity", "lessIncluded", "unitPrice", "unitCost")
_TEXT_FIELDS = ("description", "invoiceDescription", "serialNumber", "uom")
_FLAG_FIELDS = ("taxableFlag", "prorateCurrentPeriodFlag")
_DATE_FIELDS = ("effectiveDate", "cancelledDate")
_BILL_CUSTOMER = ("Billable", "DoNotBill", "NoCharge")
_WRITABLE = _NUMBER_FIELDS + _TEXT_FIELDS + _FLAG_FIELDS + _DATE_FIELDS + ("billCustomer",)


def _coerce(name: str, value):
    """A value for a writable addition field, converted as ConnectWise's JSON binder would."""
    if name in _NUMBER_FIELDS:
        if isinstance(value, bool):
            raise _invalid("addition", name, f"The value for {name} must be a number.")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise _invalid("addition", name, f"The value for {name} must be a number.") from None
        if number < 0:
            raise _invalid("addition", name, f"{name} must be greater than or equal to 0.")
        return number
    if name in _DATE_FIELDS:
        if value is None and name == "cancelledDate":
            return None
        when = psa_data.parse_instant(value)
        if when is None:
            raise _invalid("addition", name, f"The value for {name} must be a date.")
        return _when(when)
    if name in _FLAG_FIELDS:
        if not isinstance(value, bool):
            raise _invalid("addition", name, f"The value for {name} must be true or false.")
        return value
    if name == "billCustomer":
        if value not in _BILL_CUSTOMER:
            raise _invalid(
                "addition", name, f"billCustomer must be one of {', '.join(_BILL_CUSTOMER)}."
            )
        return value
    return None if value is None else str(value)


def _writable_name(path: str) -> str:
    name = path.strip().lstrip("/")
    for candidate in _WRITABLE:
        if candidate.lower() == name.lower():
            return candidate
    raise _invalid("addition", name, f"The field {name} cannot be updated.")


def _check_open(agreement: dict) -> None:
    """Refuse writes when told to, and to the additions of a cancelled agreement."""
    refusal = control.write_refusal()
    if refusal:
        raise _invalid("addition", "id", refusal)
    if agreement["agreementStatus"] == "Cancelled":
        message = "Additions of a cancelled agreement cannot be changed."
        raise _invalid("addition", "agreementId", message)


def _check_editable(tenant: _Tenant, addition: dict) -> None:
    _check_open(tenant.agreements[addition["agreementId"]])
    cancelled = psa_data.parse_instant(addition.get("cancelledDate"))
    if cancelled and cancelled <= datetime.datetime.now(datetime.UTC):
        raise _invalid("addition", "cancelledDate", "A cancelled addition cannot be updated.")


def _apply(addition: dict, changes: dict) -> dict:
    """Set `changes` on the addition; return {field: [old, new]} of what changed."""
    diff = {k: [addition.get(k), v] for k, v in changes.items() if addition.get(k) != v}
    addition.update(changes)
    _refresh(addition)
    addition["_info"] = {"lastUpdated": _now(), "updatedBy": API_MEMBER}
    return diff


def _patch_changes(operations) -> dict:
    if not isinstance(operations, list) or not operations:
        raise ApiError(400, "The request body must be a JSON Patch array of operations.")
    changes = {}
    for operation in operations:
        if not isinstance(operation, dict) or "path" not in operation:
            raise ApiError(400, "Each patch operation needs op, path and value.")
        op = str(operation.get("op", "")).lower()
        name = _writable_name(str(operation["path"]))
        if op in ("add", "replace"):
            changes[name] = _coerce(name, operation.get("value"))
        elif op == "remove":
            if name not in (*_TEXT_FIELDS, "cancelledDate"):
                raise _invalid("addition", name, f"{name} is required.")
            changes[name] = None
        else:
            raise ApiError(400, f"Unsupported patch operation '{operation.get('op')}'.")
    return changes


def _body_changes(body, tenant: _Tenant, creating: bool) -> dict:
    """Fields of a POSTed or PUT addition; product and billCustomer are required."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be an addition object.")
    product = body["product"] if isinstance(body.get("product"), dict) else {}
    match = next(
        (
            p
            for p in tenant.catalog
            if p["id"] == product.get("id")
            or str(p["identifier"]).lower() == str(product.get("identifier", "")).lower()
        ),
        None,
    )
    if match is None:
        raise _invalid("addition", "product", "A product from the catalog is required.")
    if "billCustomer" not in body:
        raise _invalid("addition", "billCustomer", "billCustomer is required.")
    changes = {"product": {"id": match["id"], "identifier": match["identifier"]}}
    defaults = {
        "quantity": 0,
        "lessIncluded": 0,
        "unitPrice": match["price"],
        "unitCost": match["cost"],
    }
    defaults["effectiveDate"] = _now() if creating else None
    for name in _WRITABLE:
        if name in body:
            changes[name] = _coerce(name, body[name])
        elif defaults.get(name) is not None:
            changes[name] = _coerce(name, defaults[name])
    changes.setdefault("cancelledDate", None)
    return changes


# --- request handling --------------------------------------------------------------------------


@dataclass
class _Caller:
    slug: str
    credential: str


def _authenticate(request: Request) -> _Caller:
    client_id = request.headers.get("clientId", "").strip()
    try:
        uuid.UUID(client_id)
    except ValueError:
        message = (
            "A valid clientId header is required. See https://developer.connectwise.com/ClientID"
        )
        raise ApiError(400, message) from None
    user, private_key = basic_auth(request) or ("", "")
    company_id, _, public_key = user.partition("+")
    for slug, creds in CREDENTIALS.items():
        if (
            company_id.lower() == creds["company_id"].lower()
            and public_key == creds["public_key"]
            and private_key == creds["private_key"]
        ):
            return _Caller(slug, f"{creds['company_id']}+{public_key}")
    raise ApiError(401, "Authentication failed: the company, public key or private key is wrong.")


def _find(records: list[dict], record_id: str, label: str) -> dict:
    for record in records:
        if str(record["id"]) == record_id:
            return record
    raise ApiError(404, f"{label} with id {record_id} was not found.")


def _collection(request: Request, records: list[dict], rest: list[str], label: str) -> Response:
    if request.method != "GET":
        raise ApiError(
            405, f"The requested resource does not support http method '{request.method}'."
        )
    if not rest:
        return _list_response(request, records)
    if rest == ["count"]:
        return JSONResponse({"count": len(_filtered(request, records))})
    if len(rest) == 1:
        return JSONResponse(_without_nulls(_find(records, rest[0], label)))
    raise ApiError(404, "The requested resource was not found.")


def _additions(request: Request, body, caller: _Caller, tenant: _Tenant, agreement_id: str, rest):
    agreement = _find(list(tenant.agreements.values()), agreement_id, "Agreement")
    lines = tenant.additions[agreement["id"]]
    method = request.method
    if method == "GET":
        return _collection(request, list(lines.values()), rest, "Addition")
    if method == "POST" and not rest:
        return _create_addition(caller, tenant, agreement, body)
    if len(rest) != 1 or method not in ("PATCH", "PUT", "DELETE"):
        raise ApiError(405, f"The requested resource does not support http method '{method}'.")
    addition = _find(list(lines.values()), rest[0], "Addition")
    _check_editable(tenant, addition)
    if method == "DELETE":
        del lines[addition["id"]]
        _log(caller, "DELETE", addition, {"deleted": [addition["quantity"], None]})
        return Response(status_code=204)
    changes = _patch_changes(body) if method == "PATCH" else _body_changes(body, tenant, False)
    if control.fault("ignore_writes"):
        answered = copy.deepcopy(addition)
        _apply(answered, changes)
        return JSONResponse(_without_nulls(answered))
    _log(caller, method, addition, _apply(addition, changes))
    return JSONResponse(_without_nulls(addition))


def _create_addition(caller: _Caller, tenant: _Tenant, agreement: dict, body) -> Response:
    _check_open(agreement)
    changes = _body_changes(body, tenant, True)
    addition = {
        "id": tenant.next_addition_id,
        "agreementId": agreement["id"],
        "agreementStatus": agreement["agreementStatus"],
        "taxableFlag": True,
        "uom": "Each",
        "prorateCurrentPeriodFlag": False,
    }
    tenant.next_addition_id += 1
    diff = _apply(addition, changes)
    tenant.additions[agreement["id"]][addition["id"]] = addition
    _log(caller, "POST", addition, diff)
    return JSONResponse(_without_nulls(addition), status_code=201)


def _log(caller: _Caller, method: str, addition: dict, changes: dict) -> None:
    control.log_write(
        partner=caller.slug,
        method=method,
        resource="addition",
        agreement_id=addition["agreementId"],
        id=addition["id"],
        changes=changes,
    )


def _system_info(request: Request) -> Response:
    return JSONResponse(
        {
            "version": VERSION,
            "isCloud": True,
            "serverTimeZone": "Eastern Standard Time",
            "cloudRegion": "NA",
        }
    )


def _dispatch(request: Request, body, caller: _Caller, parts: list[str]) -> Response:
    lowered = [p.lower() for p in parts]
    with _TENANTS.lock:
        tenant = _TENANTS.get(caller.slug)
        if lowered[:2] == ["company", "companies"]:
            return _collection(request, tenant.companies, parts[2:], "Company")
        if lowered[:2] == ["procurement", "catalog"]:
            return _collection(request, tenant.catalog, parts[2:], "Catalog item")
        if lowered[:3] == ["finance", "agreements", "types"]:
            return _collection(request, tenant.types, parts[3:], "Agreement type")
        if (
            lowered[:2] == ["finance", "agreements"]
            and len(parts) >= 4
            and lowered[3] == "additions"
        ):
            return _additions(request, body, caller, tenant, parts[2], parts[4:])
        if lowered[:2] == ["finance", "agreements"]:
            return _collection(request, list(tenant.agreements.values()), parts[2:], "Agreement")
        if lowered == ["system", "info"]:
            return _system_info(request)
    raise ApiError(404, "The requested resource was not found.")


@mangling
async def api(request: Request) -> Response:
    if request.path_params["codebase"] not in CODEBASES:
        return html_error(404)
    refused = await control.begin()
    if refused:
        return refused
    try:
        caller = _authenticate(request)
        limited = control.check_rate(caller.credential)
        if limited:
            return limited
        parts = [p for p in request.path_params["path"].split("/") if p]
        try:
            body = await request.json() if request.method in ("POST", "PUT", "PATCH") else None
        except ValueError:
            raise ApiError(400, "The request body is not valid JSON.") from None
        return _dispatch(request, body, caller, parts)
    except ApiError as exc:
        return _error(exc.status, exc.message, exc.code, exc.errors)


@mangling
async def company_info(request: Request) -> Response:
    """Unauthenticated codebase lookup; an unknown company gets a JSON null, as ConnectWise does."""
    refused = await control.begin()
    if refused:
        return refused
    company_id = request.path_params["company_id"]
    for slug, creds in CREDENTIALS.items():
        if creds["company_id"].lower() == company_id.lower():
            return JSONResponse(
                {
                    "CompanyName": data.partner_by_slug(slug).name,
                    "Codebase": CURRENT_CODEBASE + "/",
                    "VersionCode": VERSION.rsplit(".", 1)[0],
                    "VersionNumber": "v4.6." + VERSION.rsplit(".", 1)[1],
                    "CompanyID": creds["company_id"],
                    "IsCloud": True,
                    "SiteUrl": request.url.netloc + MOUNT,
                }
            )
    return JSONResponse(None)


def routes() -> list[BaseRoute]:
    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    api_routes = [
        Route("/login/companyinfo/{company_id}", company_info, methods=["GET"]),
        Route("/{codebase}/apis/3.0/{path:path}", api, methods=methods),
    ]
    return [Mount(MOUNT, routes=api_routes), *control.routes()]
