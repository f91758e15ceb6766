"""Autotask PSA REST v1.0 sandbox, mounted at /autotask.

Zone discovery: `GET {base}/autotask/atservicesrest/v1.0/zoneInformation?user={username}`
answers `{"zoneName", "url", "webUrl", "ci"}` where url is the zone's API root ending in
`ATServicesRest/`, e.g. `{base}/autotask/webservices5/ATServicesRest/`; clients append `V1.0/`
(paths are case-insensitive and doubled slashes are tolerated, as on IIS). An unknown user gets
500 `{"errors": ["Zone information could not be determined"]}`.

Zone API, headers `ApiIntegrationCode`, `UserName`, `Secret`:
  POST /{Entity}/query  {"filter": [...], "MaxRecords": 1..500, "IncludeFields": [...]}
  GET  /{Entity}/query?search={same JSON}
  POST|GET /{Entity}/query/count -> {"queryCount": n}
  GET  /{Entity}/{id} -> {"item": {...}} ({"item": null} when there is none)
  POST /ContractServiceAdjustments or /Contracts/{id}/ServiceAdjustments -> {"itemId": n}
Entities: Companies (companyType 1 Customer, 3 Prospect, 7 Vendor), Services (the recurring
catalogue; KnowBe4 seats are Services), Products (one-off hardware), Contracts (contractType 7
Recurring Service, status 1 active / 0 inactive), ContractServices, ContractServiceUnits.
Body keys are case-insensitive (`MaxRecords` or `maxRecords`). Filter items
`{"op", "field", "value", "udf"}` with op eq noteq gt gte lt lte beginsWith endsWith contains
exist notExist in notIn, or `{"op": "and"|"or", "items": [...]}`; the top-level list is ANDed.
Results come in id order, `{"items": [...], "pageDetails": {"count", "requestCount",
"prevPageUrl", "nextPageUrl"}}`; nextPageUrl is a GET URL the client follows as it is.

ContractServiceUnits has one row per contract period (monthly from the contract's start) and
service, split at each adjustment's effective date; `units` of the row spanning today is the
billed quantity. Rows are served for the periods from two months before today to three months
after (history further back is not kept). A ContractServiceAdjustment's `unitChange` is a
whole-number delta applied from `effectiveDate` (inside the contract's dates) on; a non-integer
is refused the way .NET's JSON binder refuses it; a ContractService that does not exist yet is
created with 0 units, as Autotask does.

Limits: 10,000 requests per rolling hour per database (partner), 0.5 s of added latency from
50 % of that and 1 s from 75 % (`threshold_latency`), 429 with Retry-After at 100 %; at most 3
concurrent requests per entity and integration code (`thread_limit`). Control keys:
hourly_request_limit, threshold_latency, thread_limit, plus the common ones. GET
ThresholdInformation reports the budget and its use, as real Autotask does.

Inferred where the research is silent or [I]: wrong UserName/Secret, or a user of another zone,
get 401 with an empty body; a missing or unknown ApiIntegrationCode gets 500
`{"errors": ["IntegrationCode is invalid."]}`; other refusals are 500 `{"errors": [...]}`
(Autotask answers business-rule errors with 500); the paging token
`query/next?paging=...&search=...`; MaxRecords above 500 is refused; the 429 wording; the
unit-row ids (service id * 1000 + row number, which change when a row is split).
"""

import asyncio
import bisect
import datetime
import json
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from sandboxes import data, psa_data
from sandboxes.ratelimit import (
    PartnerStates,
    SandboxControl,
    SlidingWindow,
    html_error,
    int_or_none,
    mangling,
    token,
)

MOUNT = "/autotask"
API_VERSION = "v1.0"
MAX_RECORDS = 500
ZONES = {
    "demo": (5, "America West"),
    "northwind": (14, "EMEA - UK"),
    "maple": (3, "America East 2"),
}
DEFAULT_ZONE = (2, "America East")
HOURLY_LIMIT = 10_000
THREAD_LIMIT = 3
OWNER_RESOURCE_ID = 29682885

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_SECRET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789#*@"


def _credentials(slug: str) -> dict:
    zone, _ = ZONES.get(slug, DEFAULT_ZONE)
    return {
        "zone_lookup_path": f"{MOUNT}/atservicesrest/{API_VERSION}/zoneInformation",
        "username": f"{token('autotask', slug, 'user', length=8)}@{slug}-msp.example",
        "secret": token("autotask", slug, "secret", length=20, alphabet=_SECRET),
        "integration_code": token("autotask", slug, "code", length=27, alphabet=_UPPER),
        "zone": f"webservices{zone}",
    }


CREDENTIALS = {p.slug: _credentials(p.slug) for p in data.PARTNERS.values()}
DEMO_CREDENTIALS = CREDENTIALS[data.PARTNERS[data.DEMO_PARTNER_KEY].slug]


def zone_url(base_url: str, slug: str) -> str:
    return f"{base_url.rstrip('/')}{MOUNT}/{CREDENTIALS[slug]['zone']}/ATServicesRest/"


def partner_credentials(base_url: str, slug: str) -> dict:
    """A partner's credentials with the zone lookup URL and the zone's API root."""
    return {
        **CREDENTIALS[slug],
        "zone_lookup_url": base_url.rstrip("/") + CREDENTIALS[slug]["zone_lookup_path"],
        "api_url": zone_url(base_url, slug) + "V1.0/",
    }


def demo_credentials(base_url: str) -> dict:
    return partner_credentials(base_url, data.PARTNERS[data.DEMO_PARTNER_KEY].slug)


def connection_fields(base_url: str, slug: str = "demo") -> tuple[dict, dict]:
    """What a person types into TrueUp's connect form for this partner: (settings, secrets)."""
    c = partner_credentials(base_url, slug)
    return (
        {"zone_lookup_url": c["zone_lookup_url"], "zone_url": "", "username": c["username"]},
        {"secret": c["secret"], "integration_code": c["integration_code"]},
    )


# --- wire format -------------------------------------------------------------------------------

_COMPANY_TYPES = {"Customer": 1, "Prospect": 3, "Vendor": 7}
_HARDWARE = (
    (1201, "Dell OptiPlex 7010 Micro", "OPTIPLEX-7010", 899.00, 742.00),
    (1202, "Ubiquiti U6+ Access Point", "U6-PLUS", 179.00, 129.00),
    (1203, "APC Back-UPS Pro 1500VA", "BR1500MS2", 259.00, 198.00),
)


def _date(day: datetime.date) -> str:
    """A date-only field, which Autotask does not convert between time zones."""
    return f"{day.isoformat()}T00:00:00"


def _stamp(day: datetime.date, record_id: int) -> str:
    seconds = record_id * 7919 % 86_400
    moment = datetime.datetime.combine(day, datetime.time(), datetime.UTC)
    moment += datetime.timedelta(seconds=seconds, milliseconds=record_id % 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _company(c: psa_data.PSACompanyRecord) -> dict:
    created = data.UNIVERSE_DATE - datetime.timedelta(days=c.id % 2000)
    return {
        "id": c.id,
        "companyName": c.name,
        "companyNumber": c.identifier,
        "companyType": _COMPANY_TYPES[c.company_type],
        "isActive": c.active,
        "parentCompanyID": None,
        "phone": "",
        "address1": None,
        "city": None,
        "state": None,
        "postalCode": None,
        "countryID": None,
        "webAddress": None,
        "ownerResourceID": OWNER_RESOURCE_ID,
        "classification": None,
        "marketSegmentID": None,
        "taxRegionID": None,
        "isTaxExempt": False,
        "isClientPortalActive": False,
        "createDate": _stamp(created, c.id),
        "lastActivityDate": _stamp(data.UNIVERSE_DATE, c.id),
        "lastTrackedModifiedDateTime": _stamp(data.UNIVERSE_DATE, c.id),
        "userDefinedFields": [],
    }


def _service(p: psa_data.Product, vendor_id: int | None) -> dict:
    return {
        "id": p.id,
        "name": p.name,
        "description": f"{p.name} ({p.identifier})",
        "invoiceDescription": p.name,
        "isActive": p.active,
        "unitPrice": p.unit_price,
        "unitCost": p.unit_cost,
        "periodType": 1,
        "billingCodeID": 29682801,
        "markupRate": None,
        "serviceLevelAgreementID": None,
        "vendorCompanyID": vendor_id if (p.kb4_level or p.kb4_sku) else None,
        "createDate": _stamp(data.UNIVERSE_DATE - datetime.timedelta(days=900), p.id),
        "lastModifiedDate": _stamp(data.UNIVERSE_DATE - datetime.timedelta(days=200), p.id),
        "userDefinedFields": [],
    }


def _product(product_id: int, name: str, sku: str, price: float, cost: float) -> dict:
    return {
        "id": product_id,
        "name": name,
        "description": name,
        "sku": sku,
        "manufacturerProductName": sku,
        "externalProductID": None,
        "isActive": True,
        "isSerialized": False,
        "unitPrice": price,
        "unitCost": cost,
        "periodType": None,
        "userDefinedFields": [],
    }


def _contract(c: psa_data.BillingContainer) -> dict:
    return {
        "id": c.id,
        "companyID": c.company_id,
        "contractName": c.name,
        "contractNumber": f"C{c.id:06d}",
        "contractType": 7,
        "contractCategory": 1,
        "contractPeriodType": "m",
        "status": 0 if c.status == "Cancelled" else 1,
        "startDate": _date(c.start_date),
        "endDate": _date(c.end_date),
        "description": f"{c.type_name} recurring service contract",
        "isDefaultContract": False,
        "billingPreference": 1,
        "billToCompanyID": None,
        "contactID": None,
        "purchaseOrderNumber": None,
        "serviceLevelAgreementID": None,
        "renewedContractID": None,
        "timeReportingRequiresStartAndStopTimes": 1,
        "userDefinedFields": [],
    }


def _contract_service(line: psa_data.BillingLine) -> dict:
    product = _PRODUCTS[line.product_id]
    return {
        "id": line.id,
        "contractID": line.container_id,
        "serviceID": line.product_id,
        "unitPrice": line.unit_price,
        "unitCost": line.unit_cost,
        "adjustedPrice": line.unit_price,
        "internalCurrencyUnitPrice": line.unit_price,
        "internalCurrencyAdjustedPrice": line.unit_price,
        "invoiceDescription": product.name,
        "internalDescription": None,
        "quoteItemID": None,
        "userDefinedFields": [],
    }


_PRODUCTS = {p.id: p for p in psa_data.catalogue()}

# --- state -------------------------------------------------------------------------------------


@dataclass
class _Units:
    """The unit history of one contract service: `base` from `start`, then dated deltas."""

    start: datetime.date
    base: int
    changes: list[tuple[datetime.date, int]] = field(default_factory=list)

    def at(self, day: datetime.date) -> int:
        return self.base + sum(delta for when, delta in self.changes if when <= day)


@dataclass
class _Tenant:
    entities: dict[str, dict[int, dict]]  # entity name -> id -> record
    units: dict[int, _Units]  # contract service id -> unit history
    next_adjustment_id: int = 1
    next_service_id: int = 0
    version: int = 0
    unit_rows: tuple = ((None, -1), [])  # ((day, version), rows) cache


def _build(slug: str) -> _Tenant:
    universe = psa_data.universe(slug)
    vendor = next((c.id for c in universe.companies if c.name == "KnowBe4, Inc."), None)
    units = {}
    for line in universe.lines():
        history = _Units(line.effective_date, line.quantity)
        if line.cancelled_date:
            history.changes.append((line.cancelled_date, -line.quantity))
        units[line.id] = history
    entities = {
        "Companies": {c.id: _company(c) for c in universe.companies},
        "Services": {p.id: _service(p, vendor) for p in universe.products},
        "Products": {h[0]: _product(*h) for h in _HARDWARE},
        "Contracts": {c.id: _contract(c) for c in universe.containers},
        "ContractServices": {line.id: _contract_service(line) for line in universe.lines()},
    }
    return _Tenant(
        entities={name: dict(sorted(records.items())) for name, records in entities.items()},
        units=units,
        next_service_id=max(units, default=10_000) + 1,
    )


_TENANTS: PartnerStates[_Tenant] = PartnerStates(_build)
_QUERYABLE = (
    "Companies",
    "Services",
    "Products",
    "Contracts",
    "ContractServices",
    "ContractServiceUnits",
)
_ENTITY_NAMES = {name.lower(): name for name in (*_QUERYABLE, "ContractServiceAdjustments")}


def _today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def _add_months(day: datetime.date, months: int) -> datetime.date:
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    month += 1
    last = (datetime.date(year + month // 12, month % 12 + 1, 1) - datetime.timedelta(days=1)).day
    return datetime.date(year, month, min(day.day, last))


def _periods(contract: dict, today: datetime.date):
    """The contract's monthly periods that overlap the window served around today."""
    start = datetime.date.fromisoformat(contract["startDate"][:10])
    end = datetime.date.fromisoformat(contract["endDate"][:10])
    window_start = _add_months(today.replace(day=1), -2)
    window_end = _add_months(today, 3)
    months = (window_start.year - start.year) * 12 + window_start.month - start.month - 1
    k = max(0, months)
    while True:
        period_start = _add_months(start, k)
        if period_start > min(end, window_end):
            return
        period_end = min(_add_months(start, k + 1) - datetime.timedelta(days=1), end)
        if period_end >= window_start:
            yield period_start, period_end
        k += 1


def _unit_rows(tenant: _Tenant, today: datetime.date) -> list[dict]:
    if tenant.unit_rows[0] == (today, tenant.version):
        return tenant.unit_rows[1]
    rows = []
    contracts = tenant.entities["Contracts"]
    for service in tenant.entities["ContractServices"].values():
        history = tenant.units[service["id"]]
        number = 0
        for period_start, period_end in _periods(contracts[service["contractID"]], today):
            cuts = sorted(
                {when for when, _ in history.changes if period_start < when <= period_end}
            )
            starts = [max(period_start, history.start), *cuts]
            for i, segment_start in enumerate(starts):
                segment_end = cuts[i] - datetime.timedelta(days=1) if i < len(cuts) else period_end
                if segment_start > segment_end:
                    continue
                number += 1
                units = history.at(segment_start)
                rows.append(
                    {
                        "id": service["id"] * 1000 + number,
                        "contractID": service["contractID"],
                        "contractServiceID": service["id"],
                        "serviceID": service["serviceID"],
                        "startDate": _date(segment_start),
                        "endDate": _date(segment_end),
                        "units": units,
                        "price": round(units * service["unitPrice"], 2),
                        "cost": round(units * service["unitCost"], 2),
                        "internalCurrencyPrice": round(units * service["unitPrice"], 2),
                        "approveAndPostDate": _date(segment_end) if segment_end < today else None,
                        "organizationalLevelAssociationID": None,
                        "vendorCompanyID": None,
                    }
                )
    tenant.unit_rows = ((today, tenant.version), rows)
    return rows


def _records(tenant: _Tenant, entity: str) -> list[dict]:
    if entity == "ContractServiceUnits":
        return _unit_rows(tenant, _today())
    return list(tenant.entities[entity].values())


# --- errors and control ------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, *messages: str):
        super().__init__(*messages)
        self.status, self.messages = status, list(messages)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"errors": [message]}, status_code=status)


def reset() -> None:
    _TENANTS.clear()
    control.reset()
    with _BUDGET_LOCK:
        _BUDGETS.clear()


control = SandboxControl(
    "autotask",
    _error,
    reset,
    {"hourly_request_limit": HOURLY_LIMIT, "threshold_latency": True, "thread_limit": THREAD_LIMIT},
)
_BUDGET_LOCK = threading.Lock()
_BUDGETS: dict[int, SlidingWindow] = {}  # limit -> window keyed by partner (the database)
_IN_FLIGHT: dict[tuple[str, str], int] = {}


def _spend_budget(slug: str) -> tuple[int | None, float]:
    """Count a request against the partner's hourly budget: (seconds to wait, latency to add)."""
    limit = int(control.fault("hourly_request_limit"))
    with _BUDGET_LOCK:
        window = _BUDGETS.setdefault(limit, SlidingWindow(limit, 3600.0))
        now = time.monotonic()
        wait = window.hit(slug, now)
        used = window.usage(slug, now) / limit
    if wait is not None or not control.fault("threshold_latency"):
        return wait, 0.0
    return None, 1.0 if used >= 0.75 else 0.5 if used >= 0.5 else 0.0


# --- filters -----------------------------------------------------------------------------------

_OPS = {
    "eq": "eq",
    "noteq": "ne",
    "gt": "gt",
    "gte": "ge",
    "lt": "lt",
    "lte": "le",
    "beginswith": "beginswith",
    "endswith": "endswith",
    "contains": "contains",
}


def _field(entity: str, name: str, fields: dict[str, str] | None) -> str:
    if fields is None:  # no records to learn the fields from: nothing can match anyway
        return str(name)
    key = fields.get(str(name).lower())
    if key is None:
        raise ApiError(500, f"Unable to find {name} in the {entity} entity.")
    return key


def _compile(entity: str, item, fields: dict[str, str] | None):
    if not isinstance(item, dict) or "op" not in item:
        raise ApiError(500, "Each filter item needs an op.")
    op = str(item["op"]).lower()
    if op in ("and", "or"):
        parts = [_compile(entity, i, fields) for i in item.get("items") or []]
        if not parts:
            raise ApiError(500, f"The '{op}' filter needs items.")
        combine = all if op == "and" else any
        return lambda r: combine(p(r) for p in parts)
    if item.get("udf"):
        name = str(item.get("field", ""))

        def value_of(r):
            udfs = r.get("userDefinedFields") or []
            return next((u.get("value") for u in udfs if u.get("name") == name), None)
    else:
        key = _field(entity, item.get("field", ""), fields)

        def value_of(r):
            return r.get(key)

    expected = item.get("value")
    if op in ("exist", "notexist"):
        wanted = op == "exist"
        return lambda r: (value_of(r) not in (None, "")) == wanted
    if op in ("in", "notin"):
        if not isinstance(expected, list):
            raise ApiError(500, f"The '{item['op']}' filter needs a list value.")
        wanted = op == "in"
        if all(isinstance(e, int) and not isinstance(e, bool) for e in expected):
            ids = set(expected)  # the common case, ids: a set, not 500 comparisons a row
            return lambda r: (value_of(r) in ids) == wanted
        return lambda r: any(psa_data.compare(value_of(r), "eq", e) for e in expected) == wanted
    if op not in _OPS:
        raise ApiError(500, f"Unknown filter operation '{item['op']}'.")
    compare_op = _OPS[op]
    return lambda r: psa_data.compare(value_of(r), compare_op, expected)


@dataclass
class _Search:
    filter: list
    max_records: int
    include_fields: list[str] | None

    def as_json(self) -> str:
        search = {"filter": self.filter, "MaxRecords": self.max_records}
        if self.include_fields is not None:
            search["IncludeFields"] = self.include_fields
        return json.dumps(search, separators=(",", ":"))


def _search(body) -> _Search:
    if not isinstance(body, dict):
        raise ApiError(500, "The query must be a JSON object.")
    body = {str(k).lower(): v for k, v in body.items()}
    filters = body.get("filter")
    if not isinstance(filters, list) or not filters:
        raise ApiError(500, "A filter is required: pass at least one filter item.")
    max_records = body.get("maxrecords", MAX_RECORDS)
    if isinstance(max_records, bool) or not isinstance(max_records, int):
        raise ApiError(500, "MaxRecords must be a whole number.")
    if not 1 <= max_records <= MAX_RECORDS:
        raise ApiError(500, f"MaxRecords must be between 1 and {MAX_RECORDS}.")
    include = body.get("includefields")
    if include is not None and not (isinstance(include, list) and include):
        include = None
    return _Search(filters, max_records, include)


def _matches(entity: str, records: list[dict], search: _Search):
    fields = {k.lower(): k for k in records[0]} if records else None
    predicates = [_compile(entity, item, fields) for item in search.filter]
    return fields, lambda r: all(p(r) for p in predicates)


def _page(request: Request, entity: str, records, search: _Search, after: int, previous: list[int]):
    fields, matches = _matches(entity, records, search)
    ids = [r["id"] for r in records]
    found = []
    for record in records[bisect.bisect_right(ids, after) :]:
        if matches(record):
            found.append(record)
            if len(found) > search.max_records:
                break
    more = len(found) > search.max_records
    items = found[: search.max_records]
    include = search.include_fields
    if include is not None:
        keys = [_field(entity, name, fields) for name in include]
        if more and "id" not in keys:
            raise ApiError(500, "For results of more than one page, IncludeFields must include id.")
        items = [{k: r[k] for k in keys} for r in items]
    next_url = (
        _page_url(request, entity, search, items[-1]["id"], [*previous, after]) if more else None
    )
    prev_url = _page_url(request, entity, search, previous[-1], previous[:-1]) if previous else None
    details = {
        "count": len(items),
        "requestCount": search.max_records,
        "prevPageUrl": prev_url,
        "nextPageUrl": next_url,
    }
    return JSONResponse({"items": items, "pageDetails": details})


def _page_url(
    request: Request, entity: str, search: _Search, after: int, previous: list[int]
) -> str:
    paging = {"pageSize": search.max_records, "previousIds": previous, "nextIds": [after]}
    query = urlencode(
        {"paging": json.dumps(paging, separators=(",", ":")), "search": search.as_json()}
    )
    segments = request.url.path.split("/")
    root = "/".join(segments[: [s.lower() for s in segments].index("atservicesrest") + 1])
    return f"{request.url.scheme}://{request.url.netloc}{root}/V1.0/{entity}/query/next?{query}"


# --- adjustments -------------------------------------------------------------------------------


def _whole_number(value) -> int:
    """unitChange as .NET binds it to an int: whole numbers only, numeric strings allowed."""
    if isinstance(value, bool) or value is None:
        raise ApiError(500, "unitChange is required and must be a whole number.")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value)
    if isinstance(value, str) and text.strip().lstrip("+-").isdigit():
        return int(text)
    raise ApiError(500, f"Input string '{text}' is not a valid integer. Path 'unitChange'.")


def _adjust(tenant: _Tenant, slug: str, body, contract_id: int | None) -> dict:
    refusal = control.write_refusal()
    if refusal:
        raise ApiError(500, refusal)
    if not isinstance(body, dict):
        raise ApiError(500, "The adjustment must be a JSON object.")
    body = {str(k).lower(): v for k, v in body.items()}
    unit_change = _whole_number(body.get("unitchange"))
    effective = psa_data.parse_instant(body.get("effectivedate"))
    if effective is None:
        raise ApiError(500, "effectiveDate is required.")
    effective_day = effective.date()
    service, history = _adjusted_service(tenant, body, contract_id)
    contract = tenant.entities["Contracts"][service["contractID"]]
    start = datetime.date.fromisoformat(contract["startDate"][:10])
    end = datetime.date.fromisoformat(contract["endDate"][:10])
    if contract["status"] != 1:
        raise ApiError(500, f"Contract {contract['id']} is inactive and cannot be adjusted.")
    if not start <= effective_day <= end:
        raise ApiError(500, "effectiveDate must fall between the contract's start and end dates.")
    before = history.at(effective_day)
    if before + unit_change < 0:
        left = before + unit_change
        raise ApiError(500, f"The adjustment would leave {left} units; units cannot be negative.")
    if service["id"] not in tenant.units:  # a new contract service, valid now: keep it
        tenant.entities["ContractServices"][service["id"]] = service
        tenant.units[service["id"]] = history
        tenant.next_service_id += 1
    history.changes.append((effective_day, unit_change))
    if body.get("adjustedunitprice") is not None:
        service["adjustedPrice"] = float(body["adjustedunitprice"])
    tenant.version += 1
    adjustment_id = tenant.next_adjustment_id
    tenant.next_adjustment_id += 1
    control.log_write(
        partner=slug,
        method="POST",
        resource="ContractServiceAdjustments",
        id=adjustment_id,
        contract_id=service["contractID"],
        contract_service_id=service["id"],
        unit_change=unit_change,
        effective_date=effective_day.isoformat(),
        units=[before, before + unit_change],
    )
    return {"itemId": adjustment_id}


def _adjusted_service(tenant: _Tenant, body: dict, contract_id: int | None):
    """The adjusted ContractService and its unit history.

    One that does not exist yet comes back new, with 0 units, for the caller to keep once the
    adjustment is valid: Autotask creates the ContractService an adjustment names.
    """
    services = tenant.entities["ContractServices"]
    if body.get("contractserviceid") is not None:
        service = services.get(int_or_none(body["contractserviceid"]))
        if service is None:
            raise ApiError(500, f"ContractService {body['contractserviceid']} does not exist.")
        return service, tenant.units[service["id"]]
    contract_id = contract_id or int_or_none(body.get("contractid"))
    service_id = int_or_none(body.get("serviceid"))
    if contract_id not in tenant.entities["Contracts"]:
        raise ApiError(500, f"Contract {contract_id} does not exist.")
    if service_id not in tenant.entities["Services"]:
        raise ApiError(500, f"Service {service_id} does not exist.")
    for service in services.values():
        if service["contractID"] == contract_id and service["serviceID"] == service_id:
            return service, tenant.units[service["id"]]
    contract = tenant.entities["Contracts"][contract_id]
    catalogue = tenant.entities["Services"][service_id]
    line = psa_data.BillingLine(
        id=tenant.next_service_id,
        container_id=contract_id,
        product_id=service_id,
        quantity=0,
        less_included=0,
        unit_price=catalogue["unitPrice"],
        unit_cost=catalogue["unitCost"],
        effective_date=datetime.date.fromisoformat(contract["startDate"][:10]),
        cancelled_date=None,
        calculated=False,
        kb4_customer_id=None,
    )
    return _contract_service(line), _Units(line.effective_date, 0)


# --- request handling --------------------------------------------------------------------------


def _zone_information(request: Request) -> Response:
    user = request.query_params.get("user", "")
    for slug, creds in CREDENTIALS.items():
        if creds["username"].lower() == user.lower():
            number, name = ZONES.get(slug, DEFAULT_ZONE)
            base = f"{request.url.scheme}://{request.url.netloc}"
            return JSONResponse(
                {
                    "zoneName": name,
                    "url": zone_url(base, slug),
                    "webUrl": f"{base}{MOUNT}/ww{number}/",
                    "ci": number,
                }
            )
    return _error(500, "Zone information could not be determined")


def _caller(request: Request, zone: str) -> str:
    """The partner slug of the request's API user, or an ApiError (401, or 500 for the code)."""
    user = request.headers.get("UserName", "")
    secret = request.headers.get("Secret", "")
    slug = next(
        (
            s
            for s, c in CREDENTIALS.items()
            if c["username"].lower() == user.lower() and c["secret"] == secret
        ),
        None,
    )
    if slug is None or CREDENTIALS[slug]["zone"] != zone.lower():
        raise ApiError(401)
    code = request.headers.get("ApiIntegrationCode", "")
    if code not in {c["integration_code"] for c in CREDENTIALS.values()}:
        raise ApiError(500, "IntegrationCode is invalid.")
    return slug


async def _json_body(request: Request):
    try:
        return await request.json()
    except ValueError:
        raise ApiError(500, "The request body is not valid JSON.") from None


def _threshold_information(slug: str) -> dict:
    """Real Autotask's ThresholdInformation: the hourly budget and how much of it is used."""
    limit = int(control.fault("hourly_request_limit"))
    with _BUDGET_LOCK:
        window = _BUDGETS.setdefault(limit, SlidingWindow(limit, 3600.0))
        used = window.usage(slug, time.monotonic())
    return {
        "externalRequestThreshold": limit,
        "requestThresholdTimeframe": 60,
        "currentTimeframeRequestCount": used,
    }


async def _handle(request: Request, slug: str, rest: list[str]) -> Response:
    if rest and rest[0].lower() == "thresholdinformation" and request.method == "GET":
        return JSONResponse(_threshold_information(slug))
    entity = _ENTITY_NAMES.get(rest[0].lower()) if rest else None
    if entity is None:
        raise ApiError(404, "The requested resource does not exist.")
    tail = [p.lower() for p in rest[1:]]
    if request.method == "POST" and (
        (entity == "ContractServiceAdjustments" and not tail)
        or (entity == "Contracts" and len(tail) == 2 and tail[1] == "serviceadjustments")
    ):
        body = await _json_body(request)
        with _TENANTS.lock:
            tenant = _TENANTS.get(slug)
            return JSONResponse(_adjust(tenant, slug, body, int_or_none(tail[0]) if tail else None))
    if entity not in _QUERYABLE:
        raise ApiError(405, f"{entity} can only be created; it cannot be queried.")
    if tail[:1] == ["query"]:
        return await _query(request, slug, entity, tail[1:])
    if len(tail) == 1 and request.method == "GET":
        with _TENANTS.lock:
            records = _records(_TENANTS.get(slug), entity)
            return JSONResponse(
                {"item": next((r for r in records if str(r["id"]) == tail[0]), None)}
            )
    raise ApiError(405, f"The requested resource does not support http method '{request.method}'.")


async def _query(request: Request, slug: str, entity: str, tail: list[str]) -> Response:
    after, previous = 0, []
    if tail == ["next"] and request.method == "GET":
        try:
            paging = json.loads(request.query_params.get("paging", ""))
            after, previous = int(paging["nextIds"][0]), [int(i) for i in paging["previousIds"]]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ApiError(500, "The paging parameter is invalid.") from None
    elif tail not in ([], ["count"]):
        raise ApiError(404, "The requested resource does not exist.")
    if request.method == "POST" and tail != ["next"]:
        body = await _json_body(request)
    else:
        try:
            body = json.loads(request.query_params.get("search", ""))
        except ValueError:
            raise ApiError(500, "The search parameter must be a JSON query.") from None
    search = _search(body)
    with _TENANTS.lock:
        records = _records(_TENANTS.get(slug), entity)
        if tail == ["count"]:
            _, matches = _matches(entity, records, search)
            return JSONResponse({"queryCount": sum(1 for r in records if matches(r))})
        return _page(request, entity, records, search, after, previous)


async def _zone_api(request: Request, zone: str, rest: list[str]) -> Response:
    key = (request.headers.get("ApiIntegrationCode", ""), rest[0].lower() if rest else "")
    with _BUDGET_LOCK:
        _IN_FLIGHT[key] = _IN_FLIGHT.get(key, 0) + 1
        concurrent = _IN_FLIGHT[key]
    try:
        if concurrent > int(control.fault("thread_limit")):
            control.count_rate_limited()
            message = "Thread threshold exceeded: too many concurrent requests to this entity."
            return control.too_many_requests(1, message)
        refused = await control.begin()
        if refused:
            return refused
        slug = _caller(request, zone)
        wait, latency = _spend_budget(slug)
        if wait is not None:
            control.count_rate_limited()
            message = "The API request threshold of this database has been exceeded."
            return control.too_many_requests(wait, message)
        if latency:
            await asyncio.sleep(latency)
        limited = control.check_rate(CREDENTIALS[slug]["username"])
        return limited or await _handle(request, slug, rest)
    finally:
        with _BUDGET_LOCK:
            _IN_FLIGHT[key] -= 1


@mangling
async def dispatch(request: Request) -> Response:
    parts = [p for p in request.path_params["path"].split("/") if p]
    lowered = [p.lower() for p in parts]
    try:
        if lowered == ["atservicesrest", "versioninformation"]:
            return JSONResponse({"apiVersions": ["1.0"]})
        if lowered == ["atservicesrest", API_VERSION, "zoneinformation"]:
            refused = await control.begin()
            return refused or _zone_information(request)
        in_zone = lowered[0].startswith("webservices") if parts else False
        if in_zone and lowered[1:3] == ["atservicesrest", API_VERSION]:
            return await _zone_api(request, lowered[0], parts[3:])
        return html_error(404)
    except ApiError as exc:
        if exc.status == 401:
            return Response(status_code=401)
        return JSONResponse({"errors": exc.messages}, status_code=exc.status)


def routes() -> list[BaseRoute]:
    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    return [
        Mount(MOUNT, routes=[Route("/{path:path}", dispatch, methods=methods)]),
        *control.routes(),
    ]
