"""Autotask PSA (REST v1.0): contracts' recurring services and their current period's units.

Settings (not secret): `username` (the API-only user's email), `zone_lookup_url` (the real
`zoneInformation` endpoint unless told otherwise), `zone_url` (the zone's API root as
zoneInformation answers it, e.g. `https://webservices5.autotask.net/ATServicesRest/`; empty →
looked up and handed back by `test()` to be stored) and `page_size` (MaxRecords, 1..500).
Secrets: `secret` and `integration_code` (the API tracking identifier). Every zone call sends
the headers `ApiIntegrationCode`, `UserName` and `Secret`.

How Autotask bills seats: a Recurring Service contract holds ContractServices (a Service of the
catalogue at a price); the unit count lives in ContractServiceUnits, one row per contract period
split at each adjustment's effective date, so the billed quantity is the `units` of the row
spanning today. Units change only by POSTing a ContractServiceAdjustment with a whole-number
`unitChange` (a delta) from an `effectiveDate` on; that POST is not idempotent, so it goes
through a client that never retries POST, and the service layer reads the units before and
after (`read_line`) so a repeated push sends nothing more once the first one landed.

Requests stay proportional to pages, not rows: one page of contracts brings its services with
one `in` filter over the page's contract ids, and their current units with one `in` filter per
500 service ids (Autotask's limit of OR conditions per query).

The hourly budget (10,000 requests per rolling hour per Autotask database, shared by every
integration): before an import is started, `query/count` says how many pages it will read; when
that is more than a handful of requests the adapter asks `ThresholdInformation` how much of the
budget is left and refuses to start an import that would not fit. A 429 that outlasts the
shared retries becomes a RateLimited error naming the budget and Autotask's Retry-After.
"""

import datetime
import math
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
from django.conf import settings as django_settings
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
from reconcile.core.errors import (
    BadAnswer,
    CredentialRejected,
    ExternalAPIError,
    RateLimited,
    WriteRejected,
)
from reconcile.core.fields import excerpt, plain_json, record_id, record_name
from reconcile.core.http import OutsideAPI

API = "Autotask"
ZONE_LOOKUP_URL = "https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation"
MAX_RECORDS = 500  # Autotask's most records per page
MAX_IN_VALUES = 500  # Autotask's most OR conditions (values of an `in` filter) per query
CUSTOMER = 1  # companyType picklist value of a customer
ACTIVE = 1  # Contracts.status picklist value of an active contract
# Documented Contracts.contractType picklist values, used when the API does not answer the
# entity information call (the sandbox does not offer it). Services only live on Recurring
# Service contracts, but the person chooses, as with the other PSAs.
CONTRACT_TYPES = {
    "1": "Time and Materials",
    "3": "Fixed Price",
    "4": "Block Hours",
    "6": "Retainer",
    "7": "Recurring Service",
    "8": "Per Ticket",
}
HOURLY_BUDGET = 10_000  # documented requests per rolling hour per database
# Below this many requests an import does not spend one more on ThresholdInformation: if the
# budget is gone, Autotask's 429 says so at once.
BUDGET_CHECK_FROM = 20
BUDGET_RESERVE = 100  # requests left for the MSP's other integrations when we refuse


def _whole(value: Decimal) -> bool:
    return value == value.to_integral_value()


def _decimal(value) -> Decimal | None:
    return fields.number(value, API)


def _day(value) -> datetime.date | None:
    """The date of an Autotask date field ("2026-11-01T00:00:00"), which is not TZ-converted."""
    return fields.date(value, API)


def _object(record, what: str) -> dict:
    return fields.obj(record, API, what)


def _int_id(value, what: str) -> int:
    """An Autotask id (always a JSON integer); `what` starts the message."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if value is None:
        raise BadAnswer(f"{what} without an id.")
    raise BadAnswer(f"{what} whose id is not a number: {excerpt(value)}.")


def _today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def _api_root(zone_url: str) -> str:
    """The zone's v1.0 root: zoneInformation answers `.../ATServicesRest/`, clients append it."""
    root = zone_url.strip().rstrip("/")
    if not root.lower().endswith("/v1.0"):
        root += "/V1.0"
    return root


def _company(c: dict) -> CompanyRecord:
    external_id = record_id(_object(c, "a company").get("id"), "Autotask answered a company")
    return CompanyRecord(
        external_id=external_id,
        name=record_name(c.get("companyName"), f"Autotask company {external_id}", "Autotask"),
        identifier=str(c.get("companyNumber") or ""),
        active=bool(c.get("isActive", True)),
        raw=plain_json(c),
    )


def _service(s: dict) -> ProductRecord:
    external_id = record_id(_object(s, "a service").get("id"), "Autotask answered a service")
    name = record_name(s.get("name"), f"Autotask service {external_id}", "Autotask")
    return ProductRecord(
        external_id=external_id,
        identifier=name,  # Services have no code of their own
        name=name,
        description=str(s.get("description") or ""),
        unit_price=_decimal(s.get("unitPrice")),
        unit_cost=_decimal(s.get("unitCost")),
        active=bool(s.get("isActive", True)),
        raw=plain_json(s),
    )


class AutotaskAPI(OutsideAPI):
    """What Autotask's answers mean beyond the common rules: its integration code, its
    hourly budget, and a 401 that may mean the stored zone is not the user's any more."""

    name = API
    hint = "Check the zone URL."

    def __init__(self, adapter: "AutotaskAdapter"):
        super().__init__(limiter=adapter.limiter, slots=adapter.slots)
        self.adapter = adapter

    def rejected(self, response: httpx.Response) -> ExternalAPIError:
        return CredentialRejected(self.adapter._rejection(response.status_code))

    def special(self, response: httpx.Response, *, write: bool) -> ExternalAPIError | None:
        status, errors = response.status_code, self.said(response)
        if status not in (401, 403) and "integrationcode" in errors.lower().replace(" ", ""):
            return CredentialRejected(
                f"Autotask says the integration code is invalid (HTTP {status}: {errors}). "
                "Use the API tracking identifier of the API user's security settings."
            )
        if status == 429:
            wait = response.headers.get("Retry-After", "")
            after = ""
            if wait.isdigit():
                after = f" Autotask asks to wait {math.ceil(int(wait) / 60)} minute(s)."
            return RateLimited(
                f"Autotask refused the request because the request limit is reached (HTTP 429: "
                f"{errors or 'too many requests'}), and kept refusing after "
                f"{django_settings.TRUEUP_HTTP_RETRIES} retries. Autotask allows "
                f"{HOURLY_BUDGET:,} requests per rolling hour per database, shared by all its "
                f"integrations.{after}"
            )
        return None


class AutotaskAdapter(PSAAdapter):
    # Autotask allows 3 threads at once per object endpoint and integration
    # (ThreadLimiting.htm, docs/providers/concurrency.md).
    default_concurrency = 3
    kind = "autotask"
    label = "Autotask PSA"
    # 10,000 requests an hour per database, shared by every integration; Autotask slows
    # answers down from half of it. TrueUp keeps to half unless the connection says otherwise.
    default_rates = [Rate(5000, Duration.HOUR)]
    delta_writes = True
    whole_units = True

    def __init__(self, *, settings: dict, secrets: dict):
        super().__init__(settings=settings, secrets=secrets)
        self.username = str(settings.get("username") or "").strip()
        self.zone_lookup_url = settings.get("zone_lookup_url") or ZONE_LOOKUP_URL
        self.zone_url = str(settings.get("zone_url") or "").strip()
        self.zone_name = ""
        self._zone_discovered = False
        self._zone_lock = threading.Lock()
        self.page_size = min(max(1, int(settings.get("page_size") or MAX_RECORDS)), MAX_RECORDS)
        self._budget_checked = False
        self.api = AutotaskAPI(self)

    # --- HTTP ----------------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """HTTP requests sent by this adapter (retries not counted)."""
        return self.api.requests

    def close(self) -> None:
        self.api.close()

    def _headers(self) -> dict:
        return {
            "ApiIntegrationCode": str(self.secrets.get("integration_code") or ""),
            "UserName": self.username,
            "Secret": str(self.secrets.get("secret") or ""),
            "Content-Type": "application/json",
        }

    def _zone_lookup(self) -> dict:
        if not self.username:
            raise CredentialRejected("Autotask needs the API user's user name (its email).")
        response = self.api.transmit("GET", self.zone_lookup_url, params={"user": self.username})
        if response.status_code == 200 and self.api.is_json(response):
            try:
                zone = response.json()
            except ValueError:
                zone = None
            if isinstance(zone, dict) and isinstance(zone.get("url"), str) and zone["url"]:
                return zone
            raise BadAnswer("Autotask's zone lookup answered without a zone URL.")
        if response.status_code == 500 and self.api.is_json(response):
            raise CredentialRejected(
                f"Autotask found no zone for user {self.username}: check the API user's user "
                f"name ({self.api.said(response) or 'HTTP 500'})."
            )
        raise self.api.error(response)

    def _root(self) -> str:
        with self._zone_lock:  # an import's steps start at once: one lookup serves them all
            if not self.zone_url:
                zone = self._zone_lookup()
                self.zone_url = str(zone["url"])
                self.zone_name = str(zone.get("zoneName") or "")
                self._zone_discovered = True
        return _api_root(self.zone_url)

    def _call(self, method: str, path_or_url: str, what: str, **kwargs) -> dict:
        """One read of the zone API as JSON (numbers as exact Decimals), or a readable error.
        Queries are POSTs that only read: retried like GETs."""
        url = path_or_url if "://" in path_or_url else f"{self._root()}/{path_or_url}"
        response = self.api.send(method, url, retry_post=True, headers=self._headers(), **kwargs)
        body = self.api.json(response, exact=True)
        if not isinstance(body, dict):
            raise BadAnswer(f"Autotask answered {what} with JSON that is not an object.")
        return body

    def _rejection(self, status: int) -> str:
        """Why a 401 came: a wrong user or secret, or a stored zone that is not the user's."""
        message = (
            f"Autotask rejected the API user or secret (HTTP {status}). Check the user name "
            f"{self.username} and its secret"
        )
        if self._zone_discovered:
            return message + "."
        try:  # a stored zone: the database may have moved, or the URL is another zone's
            zone = self._zone_lookup()
        except ExternalAPIError as error:
            return str(error)
        if _api_root(str(zone["url"])).lower() != _api_root(self.zone_url).lower():
            return (
                f"Autotask rejected the API user (HTTP {status}) at the zone URL {self.zone_url}:"
                f" user {self.username} belongs to the zone {zone.get('zoneName') or ''} at "
                f"{zone['url']}. Clear the zone URL to look it up again."
            )
        return message + "."

    def _query(self, entity: str, filters: list[dict], what: str) -> Iterator[list[dict]]:
        """The items of each page of `POST /{entity}/query`, following nextPageUrl (GET)."""
        body = {"filter": filters, "MaxRecords": self.page_size}
        answer = self._call("POST", f"{entity}/query", what, json=body)
        while True:
            items = answer.get("items")
            if not isinstance(items, list):
                raise BadAnswer(f"Autotask answered {what} without an items list.")
            yield items
            details = answer.get("pageDetails")
            next_url = details.get("nextPageUrl") if isinstance(details, dict) else None
            if not next_url:
                return
            answer = self._call("GET", next_url, what)

    def _count(self, entity: str, filters: list[dict], what: str) -> int:
        answer = self._call("POST", f"{entity}/query/count", what, json={"filter": filters})
        count = answer.get("queryCount")
        if not isinstance(count, int):
            raise BadAnswer(f"Autotask answered the count of {what} without a queryCount.")
        return count

    def _pages(self, entity: str, filters: list[dict], what: str) -> int:
        """How many pages a query will read (at least one, which may be empty)."""
        return max(1, math.ceil(self._count(entity, filters, what) / self.page_size))

    def _get(self, entity: str, record_id: str, what: str) -> dict | None:
        return self._call("GET", f"{entity}/{record_id}", what).get("item")

    # --- the hourly budget ----------------------------------------------------------------------

    def _threshold(self) -> dict | None:
        """ThresholdInformation, or None where the API does not offer it (404/405)."""
        url = f"{self._root()}/ThresholdInformation"
        response = self.api.transmit("GET", url, headers=self._headers())
        if response.status_code in (404, 405):
            return None
        if response.status_code != 200:
            raise self.api.error(response)
        try:
            answer = response.json()
        except ValueError:
            return None
        return answer if isinstance(answer, dict) else None

    def check_budget(self, needed: int, what: str) -> None:
        """Refuse to start `what` when it needs more requests than this hour has left."""
        if needed < BUDGET_CHECK_FROM or self._budget_checked:
            return
        self._budget_checked = True
        info = self._threshold()
        if info is None:
            return
        limit = info.get("externalRequestThreshold")
        used = info.get("currentTimeframeRequestCount")
        if not isinstance(limit, int) or not isinstance(used, int):
            return
        left = limit - used
        if needed + BUDGET_RESERVE > left:
            minutes = info.get("requestThresholdTimeframe") or 60
            raise RateLimited(
                f"Autotask's API budget cannot take {what} now: {used:,} of the {limit:,} "
                f"requests allowed per {minutes} minutes are used (by all integrations of this "
                f"Autotask database), and {what} needs about {needed:,}. Try again later."
            )

    # --- the interface --------------------------------------------------------------------------

    def test(self) -> ConnectionCheck:
        self._root()
        started = time.monotonic()
        customers = self._count(
            "Companies",
            [{"op": "eq", "field": "companyType", "value": CUSTOMER}],
            "the count of customer companies",
        )
        latency_ms = round((time.monotonic() - started) * 1000)
        zone = f"zone {self.zone_name}" if self.zone_name else f"zone URL {self.zone_url}"
        return ConnectionCheck(
            message=(
                f"Autotask accepted the API user {self.username} ({zone}, {customers} customer "
                "companies)."
            ),
            latency_ms=latency_ms,
            settings={"zone_url": self.zone_url} if self._zone_discovered else {},
        )

    def container_types(self) -> list[ContainerType]:
        """The contractType picklist from the API's entity information, else the documented one."""
        url = f"{self._root()}/Contracts/entityInformation/fields"
        response = self.api.transmit("GET", url, headers=self._headers())
        if response.status_code in (404, 405):
            return [ContainerType(value, name) for value, name in CONTRACT_TYPES.items()]
        if response.status_code != 200:
            raise self.api.error(response)
        try:
            fields = response.json().get("fields") or []
        except (ValueError, AttributeError) as error:
            raise BadAnswer(
                "Autotask answered the contract fields without a fields list."
            ) from error
        field = next((f for f in fields if str(f.get("name", "")).lower() == "contracttype"), None)
        if not field or not field.get("picklistValues"):
            raise BadAnswer("Autotask's contract fields do not list the contract types.")
        return [
            ContainerType(str(v["value"]), str(v.get("label") or v["value"]))
            for v in sorted(field["picklistValues"], key=lambda v: v.get("sortOrder") or 0)
            if v.get("isActive", True)
        ]

    def iter_companies(self) -> Iterator[Page[CompanyRecord]]:
        filters = [{"op": "eq", "field": "companyType", "value": CUSTOMER}]
        total = self._pages("Companies", filters, "customer companies")
        self.check_budget(total, "the import of companies")
        for number, items in enumerate(self._query("Companies", filters, "customer companies"), 1):
            yield Page([_company(c) for c in items], number, total)

    def iter_products(self) -> Iterator[Page[ProductRecord]]:
        """Services: the recurring catalogue a ContractService bills (Products are one-off)."""
        filters = [{"op": "gt", "field": "id", "value": 0}]
        total = self._pages("Services", filters, "services")
        self.check_budget(total, "the import of services")
        for number, items in enumerate(self._query("Services", filters, "services"), 1):
            yield Page([_service(s) for s in items], number, total)

    def iter_billing_lines(self, container_type_ids: list[str]) -> Iterator[Page[LineRecord]]:
        if container_type_ids:
            types = [int(t) for t in container_type_ids]
            filters = [{"op": "in", "field": "contractType", "value": types}]
        else:
            filters = [{"op": "gt", "field": "id", "value": 0}]
        pages = self._pages("Contracts", filters, "contracts")
        # At least the contracts, their services and their units: three requests a page.
        self.check_budget(3 * pages, "the import of contract services")
        today = _today()
        for number, contracts in enumerate(self._query("Contracts", filters, "contracts"), 1):
            by_id = {
                _int_id(_object(c, "a contract").get("id"), "Autotask answered a contract"): c
                for c in contracts
            }
            services = []
            if by_id:
                for items in self._query(
                    "ContractServices",
                    [{"op": "in", "field": "contractID", "value": list(by_id)}],
                    "the services of a page of contracts",
                ):
                    services += [_object(s, "a contract service") for s in items]
            ids = [_int_id(s.get("id"), "Autotask answered a contract service") for s in services]
            units = self._current_units(ids, today)
            lines = [
                self._line(s, by_id[s["contractID"]], units.get(service_id), today)
                for s, service_id in zip(services, ids, strict=True)
                if s.get("contractID") in by_id
            ]
            yield Page(lines, number, pages)

    def _current_units(self, service_ids: list[int], today: datetime.date) -> dict[int, dict]:
        """The unit rows spanning today, by contract service id: one query per 500 ids."""
        rows: dict[int, dict] = {}
        for start in range(0, len(service_ids), MAX_IN_VALUES):
            chunk = service_ids[start : start + MAX_IN_VALUES]
            filters = [
                {"op": "in", "field": "contractServiceID", "value": chunk},
                {"op": "lte", "field": "startDate", "value": f"{today.isoformat()}T00:00:00"},
                {"op": "gte", "field": "endDate", "value": f"{today.isoformat()}T00:00:00"},
            ]
            for items in self._query(
                "ContractServiceUnits", filters, "the current units of contract services"
            ):
                for row in items:
                    service_id = _object(row, "a unit row").get("contractServiceID")
                    rows[_int_id(service_id, "Autotask answered a unit row for a service")] = row
        return rows

    def _container(self, contract: dict) -> ContainerRecord:
        contract_type = str(contract.get("contractType", ""))
        external_id = record_id(contract.get("id"), "Autotask answered a contract")
        company_id = contract.get("companyID")
        return ContainerRecord(
            external_id=external_id,
            company_external_id=""
            if company_id is None
            else record_id(company_id, f"Autotask answered contract {external_id} with a company"),
            kind="contract",
            type_name=CONTRACT_TYPES.get(contract_type, contract_type),
            name=str(contract.get("contractName") or ""),
            status="Active" if contract.get("status") == ACTIVE else "Inactive",
            start_date=_day(contract.get("startDate")),
            end_date=_day(contract.get("endDate")),
            raw=plain_json(contract),
        )

    def _line(
        self, service: dict, contract: dict, row: dict | None, today: datetime.date
    ) -> LineRecord:
        container = self._container(contract)
        reason, cancelled = "", None
        if contract.get("status") != ACTIVE:
            reason = f"Autotask contract {contract['id']} is inactive: it takes no adjustments."
            cancelled = container.end_date
        elif container.end_date and container.end_date < today:
            reason = f"Autotask contract {contract['id']} ended on {container.end_date}."
            cancelled = container.end_date
        price = service.get("adjustedPrice")
        external_id = record_id(service.get("id"), "Autotask answered a contract service")
        what = f"contract service {external_id} (contract {container.external_id})"
        quantity = Decimal(0)  # no row spanning today: the service bills nothing this period
        if row is not None:
            quantity = _decimal(row.get("units"))
            if quantity is None:
                raise BadAnswer(f"Autotask answered the current units of {what} without units.")
        return LineRecord(
            external_id=external_id,
            container=container,
            product_external_id=record_id(
                service["serviceID"], f"Autotask answered {what} with a service"
            )
            if service.get("serviceID")
            else None,
            description=str(service.get("invoiceDescription") or ""),
            quantity=quantity,
            included_quantity=Decimal(0),
            unit_price=_decimal(price if price is not None else service.get("unitPrice")),
            effective_date=_day(row.get("startDate")) if row else None,
            cancelled_date=cancelled,
            read_only_reason=reason,
            raw=plain_json({"contractService": service, "contract": contract, "currentUnits": row}),
        )

    def read_line(self, key: LineKey, on: datetime.date | None = None) -> LineRecord:
        """The units billed on `on` (default today): an adjustment changes them from its
        effective date, so a push dated next month is seen by reading next month. One query
        for the units when the key carries the stored records, else three."""
        service = key.raw.get("contractService")
        contract = key.raw.get("contract")
        today = on or _today()
        row = self._current_units([int(key.line_id)], today).get(int(key.line_id))
        if not service or row is None:  # confirm the service is still there
            service = self._get("ContractServices", key.line_id, "a contract service")
            if service is None:
                raise BadAnswer(
                    f"Autotask has no contract service {key.line_id} (contract "
                    f"{key.container_id}) any more; import the contracts again."
                )
        if not contract:
            contract = self._get("Contracts", key.container_id, "a contract")
            if contract is None:
                raise BadAnswer(f"Autotask has no contract {key.container_id} any more.")
        return self._line(service, contract, row, today)

    def write_quantity(
        self, key: LineKey, current: Decimal, quantity: Decimal, effective_date: datetime.date
    ) -> WriteAnswer:
        """POST a ContractServiceAdjustment of `quantity - current` units from effective_date."""
        current, quantity = Decimal(current), Decimal(quantity)
        where = f"contract service {key.line_id} (contract {key.container_id})"
        if not _whole(quantity):
            raise WriteRejected(
                f"Autotask bills whole units only: cannot set {where} to {quantity}. "
                "Round the quantity first."
            )
        if not _whole(current):
            raise WriteRejected(f"Autotask bills whole units, but {where} reads {current}.")
        if quantity < 0:
            raise WriteRejected(
                f"Autotask cannot bill {quantity} units on {where}: units cannot be negative."
            )
        change = int(quantity - current)
        if change == 0:
            return WriteAnswer(0, f"No adjustment sent: {where} already bills {quantity} units.")
        service = key.raw.get("contractService") or {}
        if not service.get("serviceID"):  # the adjustment names the contract's service too
            service = self._get("ContractServices", key.line_id, "a contract service") or {}
            if not service.get("serviceID"):
                raise WriteRejected(f"Autotask has no {where} any more; import it again.")
        body = {
            "contractID": int(key.container_id),
            "serviceID": int(service["serviceID"]),
            "contractServiceID": int(key.line_id),
            "unitChange": change,
            "effectiveDate": f"{effective_date.isoformat()}T00:00:00",
        }
        url = f"{self._root()}/ContractServiceAdjustments"
        # Adjustments are not idempotent: this POST is never retried.
        response = self.api.transmit("POST", url, headers=self._headers(), json=body)
        if response.status_code == 200:
            return WriteAnswer(200, response.text[:2000])
        errors = self.api.said(response)
        refused = self.api.special(response, write=True)
        if response.status_code in (401, 403) or refused:
            raise refused or self.api.rejected(response)
        reason = errors or (
            "no reason given; the change may not have been applied, so read the units again "
            "before retrying"
        )
        raise WriteRejected(
            f"Autotask refused the adjustment of {where} by {change:+d} units from "
            f"{effective_date} (HTTP {response.status_code}): {reason}",
            status_code=response.status_code,
            body=response.text,
        )
