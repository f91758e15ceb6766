"""The ConnectWise, Autotask and Halo sandboxes over real HTTP, and the PSA universe behind them.

No database: these tests only need the sandbox server, started once per module on a free port.
Where a well-known client of the real API has a particular habit (pyconnectwise's Link regex,
django-connectwise's `+` for spaces, py-autotask's `maxRecords` and zone URL handling, the
Autotask PowerShell module's doubled slash, django-psa's token request), the test does the same.
"""

import concurrent.futures
import datetime
import json
import re
import time
from collections import Counter

import httpx
import pytest

from sandboxes import autotask, connectwise, data, halo, psa_data
from sandboxes.app import serve_in_thread

DEMO = psa_data.universe("demo")
DEMO_COMPANIES = len(DEMO.companies)
VENDORS = {"KnowBe4, Inc.", "Pax8", "Microsoft Corporation", "Datto, Inc.", "Ingram Micro"}
PYCONNECTWISE_LINK = re.compile(r'page=(\d+)>; rel="(.*?)"')  # pyconnectwise parse_link_headers


@pytest.fixture(scope="module")
def base_url():
    url, stop = serve_in_thread(port=0)
    yield url
    stop()


@pytest.fixture(autouse=True)
def fresh_sandboxes(base_url):
    yield
    httpx.post(f"{base_url}/_sandbox/reset").raise_for_status()


def _faults(base_url: str, name: str, **faults) -> dict:
    response = httpx.post(f"{base_url}/_sandbox/{name}/faults", json=faults)
    response.raise_for_status()
    return response.json()


def _state(base_url: str, name: str) -> dict:
    return httpx.get(f"{base_url}/_sandbox/{name}/state").json()


def _today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def _writable_kb4_line() -> psa_data.BillingLine:
    """An active, uncancelled, not calculated KnowBe4 seat line of the demo partner."""
    kb4 = psa_data.kb4_products()
    return next(
        line
        for container in DEMO.containers
        if container.status == "Active"
        for line in container.lines
        if line.product_id in kb4 and not line.cancelled_date and not line.calculated
    )


# --- the PSA universe --------------------------------------------------------------------------


def test_demo_ground_truth_has_the_planned_mix_of_companies():
    kinds = Counter(c.kind for c in DEMO.companies)
    assert len(data.customers("demo")) == 160
    assert kinds == {"same": 110, "variant": 37, "lookalike": 10, "psa_only": 16}
    assert DEMO_COMPANIES == 173
    assert len(DEMO.missing_kb4_customer_ids) == 13  # 8 % of 160 KnowBe4 accounts

    mapped = [c.kb4_customer_id for c in DEMO.companies if c.kb4_customer_id]
    assert len(mapped) == len(set(mapped)) == 147
    every_account = {c.id for c in data.customers("demo")}
    assert set(mapped) | set(DEMO.missing_kb4_customer_ids) == every_account
    assert not set(mapped) & set(DEMO.missing_kb4_customer_ids)
    assert psa_data.ground_truth("demo") == {c.id: c.kb4_customer_id for c in DEMO.companies}


def test_variants_spell_the_customer_differently_and_lookalikes_are_other_organisations():
    by_id = {c.id: c for c in data.customers("demo")}
    kb4_names = {c.name.strip().casefold() for c in by_id.values()}
    for company in DEMO.companies:
        kb4 = by_id.get(company.kb4_customer_id)
        if company.kind == "same":
            assert company.name == kb4.name.strip()
        elif company.kind == "variant":
            assert company.name != kb4.name.strip()
            others = kb4_names - {kb4.name.strip().casefold()}
            assert company.name.casefold() not in others
            if company.detail == "upper_case":
                assert company.name == kb4.name.strip().upper()
            if company.detail == "saint":
                assert company.name == kb4.name.strip().replace("St. ", "Saint ", 1)
        else:
            assert company.kb4_customer_id is None
            assert company.name.casefold() not in kb4_names
    lookalikes = [c for c in DEMO.companies if c.kind == "lookalike"]
    assert len(lookalikes) == 10
    first_words = {c.name.split()[0].casefold() for c in by_id.values()}
    assert all(c.name.split()[0].casefold() in first_words for c in lookalikes)
    vendors = {c.name for c in DEMO.companies if c.company_type == "Vendor"}
    assert vendors == VENDORS


def test_billing_holds_the_cases_a_reconciliation_meets():
    kb4 = psa_data.kb4_products()
    lines = DEMO.lines()
    kb4_lines = [line for line in lines if line.product_id in kb4]
    customers = {c.id: c for c in data.customers("demo")}
    assert any(line.less_included for line in kb4_lines)
    assert any(line.cancelled_date for line in kb4_lines)
    assert any(line.calculated for line in kb4_lines)
    assert any(kb4[line.product_id].kb4_sku for line in kb4_lines)  # add-on lines
    assert any(not kb4[line.product_id].active for line in kb4_lines)  # legacy product
    assert len(lines) > len(kb4_lines)  # unrelated lines around them
    several = Counter(line.container_id for line in kb4_lines)
    assert max(several.values()) >= 2
    billed = [line for line in kb4_lines if line.kb4_customer_id and not line.cancelled_date]
    differing = [
        line for line in billed if line.quantity != customers[line.kb4_customer_id].active_users
    ]
    assert 0 < len(differing) < len(billed)
    names = {p.name for p in psa_data.catalogue()}
    assert "KnowBe4 Diamond - per user" in names and "PhishER Plus add-on" in names
    assert not names & {"Diamond", "Platinum", "Gold", "Silver", "Basic"}


def test_bench_partner_has_exactly_20000_billing_lines_and_is_deterministic():
    assert len(psa_data.universe("bench").lines()) == 20_000
    psa_data.universe.cache_clear()
    assert psa_data.universe("demo") == DEMO


# --- ConnectWise -------------------------------------------------------------------------------


def _cw(base_url: str) -> tuple[httpx.Client, str]:
    creds = connectwise.demo_credentials(base_url)
    client = httpx.Client(
        auth=(f"{creds['company_id']}+{creds['public_key']}", creds["private_key"]),
        headers={"clientId": creds["client_id"]},
    )
    return client, f"{creds['site']}/{creds['codebase']}/apis/3.0"


def test_cw_companyinfo_gives_the_codebase_and_a_wrong_codebase_is_iis_404(base_url):
    creds = connectwise.demo_credentials(base_url)
    info = httpx.get(f"{creds['site']}/login/companyinfo/{creds['company_id']}").json()
    assert info["Codebase"] == "v2025_1/" and info["CompanyID"] == "demomsp"
    assert httpx.get(f"{creds['site']}/login/companyinfo/nobody").json() is None
    client, api = _cw(base_url)
    for codebase in ("v4_6_release", "v2025_1"):
        url = f"{creds['site']}/{codebase}/apis/3.0/system/info"
        assert client.get(url).json()["isCloud"] is True
    wrong = client.get(f"{creds['site']}/v2019_3/apis/3.0/company/companies")
    assert wrong.status_code == 404
    assert wrong.headers["content-type"].startswith("text/html")


def test_cw_auth_failures(base_url):
    creds = connectwise.demo_credentials(base_url)
    _, api = _cw(base_url)
    good = (f"{creds['company_id']}+{creds['public_key']}", creds["private_key"])
    no_client_id = httpx.get(f"{api}/company/companies", auth=good)
    assert no_client_id.status_code == 400
    assert no_client_id.json()["code"] == "BadRequest"
    assert "clientId" in no_client_id.json()["message"]
    wrong_key = httpx.get(
        f"{api}/company/companies",
        auth=(good[0], "not-the-key"),
        headers={"clientId": creds["client_id"]},
    )
    assert wrong_key.status_code == 401
    assert wrong_key.json()["code"] == "Unauthorized"


def test_cw_pages_with_link_headers_until_every_company_is_read(base_url):
    client, api = _cw(base_url)
    url, sizes, ids = f"{api}/company/companies?pageSize=50", [], []
    while url:
        response = client.get(url)
        sizes.append(len(response.json()))
        ids += [c["id"] for c in response.json()]
        links = {
            rel: int(page)
            for page, rel in PYCONNECTWISE_LINK.findall(response.headers.get("Link", ""))
        }
        next_link = re.search(r'<([^>]+)>; rel="next"', response.headers.get("Link", ""))
        if len(sizes) == 2:
            assert links == {"first": 1, "prev": 1, "next": 3, "last": 4}
        url = next_link.group(1) if next_link else None
    assert sizes == [50, 50, 50, 23]
    assert sorted(ids) == sorted(c.id for c in DEMO.companies)
    assert client.get(f"{api}/company/companies", params={"page": 5, "pageSize": 50}).json() == []
    assert len(client.get(f"{api}/company/companies").json()) == 25  # default page size


def test_cw_page_size_is_capped_at_1000_and_forward_only_paging_uses_page_id(base_url):
    creds = connectwise.CREDENTIALS["bench"]
    client = httpx.Client(
        auth=(f"{creds['company_id']}+{creds['public_key']}", creds["private_key"]),
        headers={"clientId": creds["client_id"]},
    )
    api = f"{base_url}/connectwise/v4_6_release/apis/3.0"
    assert len(client.get(f"{api}/company/companies", params={"pageSize": 5000}).json()) == 1000
    forward = client.get(
        f"{api}/company/companies",
        params={"pageSize": 1000},
        headers={"pagination-type": "forward-only"},
    )
    last_id = forward.json()[-1]["id"]
    assert forward.headers["Link"].endswith(f'pageId={last_id}>; rel="next"')


def test_cw_conditions_order_and_fields(base_url):
    client, api = _cw(base_url)

    def count(resource: str, conditions: str) -> int:
        response = client.get(f"{api}/{resource}/count", params={"conditions": conditions})
        return response.json()["count"]

    vendors = client.get(f"{api}/company/companies", params={"conditions": 'types/name="Vendor"'})
    assert {c["name"] for c in vendors.json()} == VENDORS
    cancelled = sum(1 for c in DEMO.containers if c.status == "Cancelled")
    assert count("finance/agreements", 'agreementStatus="Cancelled"') == cancelled
    company = DEMO.containers[0].company_id
    mine = sum(1 for c in DEMO.containers if c.company_id == company and c.status != "Cancelled")
    assert count("finance/agreements", f"company/id={company} and cancelledFlag=false") == mine
    since = datetime.date(2026, 1, 1)
    started = sum(1 for c in DEMO.containers if c.start_date > since)
    assert count("finance/agreements", "startDate > [2026-01-01T00:00:00Z]") == started
    the = sum(1 for c in DEMO.companies if c.name.lower().startswith("the "))
    assert count("company/companies", 'name like "THE %"') == the
    assert count("company/companies", 'name not like "the %"') == DEMO_COMPANIES - the
    kb4_ids = ", ".join(f'"{p.identifier}"' for p in psa_data.kb4_products().values())
    assert count("procurement/catalog", f"identifier in ({kb4_ids})") == 9
    assert count("procurement/catalog", "(inactiveFlag = true or price >= 100) and id > 0") == 3
    # django-connectwise sends spaces as "+" and "+" as %2B
    raw = client.get(f"{api}/company/companies/count?conditions=(deletedFlag+=+false)")
    assert raw.json()["count"] == DEMO_COMPANIES

    ordered = client.get(
        f"{api}/company/companies",
        params={"orderBy": "name desc", "pageSize": 3, "fields": "id,name,status/name"},
    ).json()
    top = sorted(DEMO.companies, key=lambda c: c.name.casefold(), reverse=True)[0]
    assert ordered[0]["name"] == top.name
    assert set(ordered[0]) == {"id", "name", "status"} and set(ordered[0]["status"]) == {"name"}

    bad = client.get(f"{api}/company/companies", params={"conditions": 'nosuchfield = "x"'})
    assert bad.status_code == 400 and "nosuchfield" in bad.json()["message"]


def test_cw_patch_quantity_reads_back_and_reset_restores_it(base_url):
    client, api = _cw(base_url)
    line = _writable_kb4_line()
    url = f"{api}/finance/agreements/{line.container_id}/additions/{line.id}"
    before = client.get(url).json()
    assert before["quantity"] == line.quantity
    assert before["billedQuantity"] == line.quantity - line.less_included
    assert "cancelledDate" not in before  # ConnectWise leaves null fields out

    patched = client.patch(url, json=[{"op": "replace", "path": "quantity", "value": 77}])
    assert patched.status_code == 200 and patched.json()["quantity"] == 77
    assert client.get(url).json()["billedQuantity"] == 77 - line.less_included
    patched = client.patch(url, json=[{"op": "replace", "path": "/quantity", "value": "78"}])
    assert client.get(url).json()["quantity"] == 78
    listed = client.get(f"{api}/finance/agreements/{line.container_id}/additions").json()
    assert next(a for a in listed if a["id"] == line.id)["quantity"] == 78

    writes = _state(base_url, "connectwise")["writes"]
    assert [w["changes"] for w in writes] == [
        {"quantity": [float(line.quantity), 77.0]},
        {"quantity": [77.0, 78.0]},
    ]
    httpx.post(f"{base_url}/_sandbox/connectwise/reset").raise_for_status()
    assert client.get(url).json()["quantity"] == line.quantity
    assert _state(base_url, "connectwise")["writes"] == []


def test_cw_post_put_delete_and_cancel_additions(base_url):
    client, api = _cw(base_url)
    line = _writable_kb4_line()
    additions = f"{api}/finance/agreements/{line.container_id}/additions"
    start = len(client.get(additions).json())
    created = client.post(
        additions,
        json={"product": {"identifier": "kb4-php"}, "billCustomer": "Billable", "quantity": 12},
    )
    assert created.status_code == 201
    added = created.json()
    assert added["product"]["identifier"] == "KB4-PHP" and added["unitPrice"] == 1.5
    assert added["quantity"] == 12 and added["agreementId"] == line.container_id
    assert len(client.get(additions).json()) == start + 1
    replaced = client.put(
        f"{additions}/{added['id']}",
        json={"product": {"id": added["product"]["id"]}, "billCustomer": "NoCharge", "quantity": 3},
    )
    assert replaced.json()["billCustomer"] == "NoCharge" and replaced.json()["billedQuantity"] == 3
    no_product = client.post(
        additions, json={"product": {"identifier": "NOPE"}, "billCustomer": "Billable"}
    )
    assert no_product.status_code == 400 and no_product.json()["errors"][0]["field"] == "product"
    assert client.delete(f"{additions}/{added['id']}").status_code == 204
    gone = client.get(f"{additions}/{added['id']}")
    assert gone.status_code == 404 and gone.json()["code"] == "NotFound"

    today = f"{_today().isoformat()}T00:00:00Z"
    url = f"{additions}/{line.id}"
    cancel = client.patch(url, json=[{"op": "replace", "path": "cancelledDate", "value": today}])
    assert cancel.json()["cancelledDate"] == today
    again = client.patch(url, json=[{"op": "replace", "path": "quantity", "value": 1}])
    assert again.status_code == 400 and again.json()["errors"][0]["field"] == "cancelledDate"
    methods = [w["method"] for w in _state(base_url, "connectwise")["writes"]]
    assert methods == ["POST", "PUT", "DELETE", "PATCH"]


def test_cw_refuses_writes_to_cancelled_additions_and_when_told_to(base_url):
    client, api = _cw(base_url)
    cancelled = next(
        line
        for container in DEMO.containers
        if container.status == "Active"
        for line in container.lines
        if line.cancelled_date
    )
    url = f"{api}/finance/agreements/{cancelled.container_id}/additions/{cancelled.id}"
    refused = client.patch(url, json=[{"op": "replace", "path": "quantity", "value": 5}])
    assert refused.status_code == 400
    assert refused.json()["code"] == "InvalidObject"
    assert refused.json()["errors"][0]["field"] == "cancelledDate"

    line = _writable_kb4_line()
    url = f"{api}/finance/agreements/{line.container_id}/additions/{line.id}"
    negative = client.patch(url, json=[{"op": "replace", "path": "quantity", "value": -1}])
    assert negative.status_code == 400 and negative.json()["errors"][0]["field"] == "quantity"
    _faults(base_url, "connectwise", reject_writes="Agreement is locked for invoicing")
    locked = client.patch(url, json=[{"op": "replace", "path": "quantity", "value": 5}])
    assert locked.status_code == 400
    assert locked.json()["errors"][0]["message"] == "Agreement is locked for invoicing"
    assert client.get(url).json()["quantity"] == line.quantity


def test_cw_rate_limit_and_injected_faults(base_url):
    client, api = _cw(base_url)
    _faults(base_url, "connectwise", rate_limit_per_minute=3)
    statuses = [client.get(f"{api}/system/info").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get(f"{api}/system/info")
    assert limited.json()["code"] == "TooManyRequests"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60

    _faults(base_url, "connectwise", clear=True, fail_on_requests=[7, 8], fail_status=500)
    assert client.get(f"{api}/system/info").status_code == 200  # request 6 since the reset
    failed = client.get(f"{api}/system/info")
    assert failed.status_code == 500 and failed.json()["code"] == "UnexpectedServerError"
    _faults(base_url, "connectwise", html_errors=True, fail_status=503)
    html = client.get(f"{api}/system/info")
    assert html.status_code == 503 and html.text.startswith("<!DOCTYPE html>")
    assert client.get(f"{api}/system/info").status_code == 200
    assert _state(base_url, "connectwise")["requests"] == 9
    unknown = httpx.post(f"{base_url}/_sandbox/connectwise/faults", json={"fail_on": [1]})
    wrong_type = httpx.post(f"{base_url}/_sandbox/connectwise/faults", json={"fail_status": "500"})
    assert unknown.status_code == wrong_type.status_code == 400


# --- Autotask ----------------------------------------------------------------------------------


def _at(base_url: str, slug: str = "demo") -> tuple[httpx.Client, str]:
    creds = autotask.CREDENTIALS[slug]
    zone = httpx.get(
        base_url + creds["zone_lookup_path"], params={"user": creds["username"]}
    ).json()
    client = httpx.Client(
        headers={
            "ApiIntegrationCode": creds["integration_code"],
            "UserName": creds["username"],
            "Secret": creds["secret"],
        }
    )
    return client, zone["url"].rstrip("/") + "/v1.0"  # as py-autotask builds it


def _all_pages(client: httpx.Client, url: str, query: dict) -> list[list[dict]]:
    pages = [client.post(url, json=query).json()]
    while pages[-1]["pageDetails"]["nextPageUrl"]:
        pages.append(client.get(pages[-1]["pageDetails"]["nextPageUrl"]).json())
    return [page["items"] for page in pages]


def test_at_zone_information_and_auth_failures(base_url):
    creds = autotask.demo_credentials(base_url)
    zone = httpx.get(creds["zone_lookup_url"], params={"user": creds["username"]}).json()
    assert zone["url"] == f"{base_url}/autotask/webservices5/ATServicesRest/"
    assert zone["zoneName"] == "America West" and zone["url"] + "V1.0/" == creds["api_url"]
    unknown = httpx.get(creds["zone_lookup_url"], params={"user": "nobody@example.com"})
    assert unknown.status_code == 500
    assert unknown.json() == {"errors": ["Zone information could not be determined"]}

    client, api = _at(base_url)
    query = {"filter": [{"field": "id", "op": "gt", "value": 0}], "maxRecords": 1}
    assert client.post(f"{api}/Companies/query", json=query).json()["pageDetails"]["count"] == 1
    # The Autotask PowerShell module appends "/V1.0" to a URL that already ends in "/"
    doubled = client.post(zone["url"] + "/V1.0/Companies/query", json=query)
    assert doubled.status_code == 200
    wrong_secret = httpx.post(
        f"{api}/Companies/query", json=query, headers={**client.headers, "secret": "nope"}
    )
    assert wrong_secret.status_code == 401 and wrong_secret.content == b""
    wrong_code = httpx.post(
        f"{api}/Companies/query", json=query, headers={**client.headers, "apiintegrationcode": "X"}
    )
    assert wrong_code.status_code == 500
    assert wrong_code.json() == {"errors": ["IntegrationCode is invalid."]}
    other_zone = api.replace("webservices5", "webservices14")
    assert client.post(f"{other_zone}/Companies/query", json=query).status_code == 401


def test_at_query_pages_with_next_and_previous_urls(base_url):
    client, api = _at(base_url)
    query = {"MaxRecords": 50, "filter": [{"op": "gt", "field": "id", "value": 0}]}
    pages = _all_pages(client, f"{api}/Companies/query", query)
    assert [len(p) for p in pages] == [50, 50, 50, 23]
    assert sorted(c["id"] for p in pages for c in p) == sorted(c.id for c in DEMO.companies)
    second = client.post(f"{api}/Companies/query", json=query).json()["pageDetails"]["nextPageUrl"]
    previous = client.get(client.get(second).json()["pageDetails"]["prevPageUrl"]).json()
    assert previous["items"] == pages[0]
    search = json.dumps({"filter": [{"op": "eq", "field": "companyType", "value": 7}]})
    vendors = client.get(f"{api}/Companies/query", params={"search": search}).json()["items"]
    assert {c["companyName"] for c in vendors} == VENDORS
    too_many = client.post(f"{api}/Companies/query", json={**query, "MaxRecords": 501})
    assert too_many.status_code == 500 and "MaxRecords" in too_many.json()["errors"][0]


def test_at_filter_grammar(base_url):
    client, api = _at(base_url)

    def count(entity: str, *filters: dict) -> int:
        response = client.post(f"{api}/{entity}/query/count", json={"filter": list(filters)})
        return response.json()["queryCount"]

    the = sum(1 for c in DEMO.companies if c.name.lower().startswith("the "))
    knowbe4 = sum(1 for c in DEMO.companies if "knowbe4" in c.name.lower())
    assert count("Companies", {"op": "beginsWith", "field": "companyName", "value": "the "}) == the
    either = {
        "op": "or",
        "items": [
            {"op": "beginsWith", "field": "companyname", "value": "THE "},
            {"op": "contains", "field": "companyName", "value": "knowbe4"},
        ],
    }
    assert count("Companies", either) == the + knowbe4
    customers = sum(1 for c in DEMO.companies if c.company_type == "Customer" and c.active)
    assert (
        count(
            "Companies",
            {"op": "eq", "field": "companyType", "value": 1},
            {"op": "eq", "field": "isActive", "value": True},
        )
        == customers
    )
    contract = DEMO.containers[0]
    services = count(
        "ContractServices", {"op": "in", "field": "contractID", "value": [contract.id]}
    )
    assert services == len(contract.lines)
    assert count("Contracts", {"op": "exist", "field": "endDate"}) == len(DEMO.containers)
    assert count("Contracts", {"op": "notExist", "field": "billToCompanyID"}) == len(
        DEMO.containers
    )
    unknown = client.post(
        f"{api}/Companies/query", json={"filter": [{"op": "eq", "field": "nope", "value": 1}]}
    )
    assert unknown.status_code == 500 and "nope" in unknown.json()["errors"][0]
    assert client.post(f"{api}/Companies/query", json={"filter": []}).status_code == 500
    item = client.get(f"{api}/Companies/{DEMO.companies[0].id}").json()["item"]
    assert item["companyName"] == DEMO.companies[0].name
    assert client.get(f"{api}/Companies/1").json() == {"item": None}


def _current_units(client: httpx.Client, api: str, service_id: int) -> list[dict]:
    today = _today().isoformat()
    filters = [
        {"op": "eq", "field": "contractServiceID", "value": service_id},
        {"op": "lte", "field": "startDate", "value": today},
        {"op": "gte", "field": "endDate", "value": today},
    ]
    return client.post(f"{api}/ContractServiceUnits/query", json={"filter": filters}).json()[
        "items"
    ]


def test_at_adjustment_changes_the_current_units_from_its_effective_date(base_url):
    client, api = _at(base_url)
    line = _writable_kb4_line()
    [current] = _current_units(client, api, line.id)
    assert current["units"] == line.quantity
    today = _today()
    adjustment = {
        "contractID": line.container_id,
        "serviceID": line.product_id,
        "unitChange": 5,
        "effectiveDate": f"{today.isoformat()}T00:00:00.00",
    }
    created = client.post(f"{api}/ContractServiceAdjustments", json=adjustment)
    assert created.status_code == 200 and created.json() == {"itemId": 1}
    [current] = _current_units(client, api, line.id)
    assert current["units"] == line.quantity + 5
    assert current["startDate"] == f"{today.isoformat()}T00:00:00"
    yesterday = (today - datetime.timedelta(days=1)).isoformat()
    rows = _all_pages(
        client,
        f"{api}/ContractServiceUnits/query",
        {"filter": [{"op": "eq", "field": "contractServiceID", "value": line.id}]},
    )[0]
    before = [r for r in rows if r["endDate"] <= f"{yesterday}T00:00:00"]
    assert before and all(r["units"] == line.quantity for r in before)
    down = client.post(
        f"{api}/Contracts/{line.container_id}/ServiceAdjustments",
        json={**adjustment, "unitChange": -2},
    )
    assert down.json() == {"itemId": 2}
    assert _current_units(client, api, line.id)[0]["units"] == line.quantity + 3
    writes = _state(base_url, "autotask")["writes"]
    assert [w["units"] for w in writes] == [
        [line.quantity, line.quantity + 5],
        [line.quantity + 5, line.quantity + 3],
    ]
    httpx.post(f"{base_url}/_sandbox/reset").raise_for_status()
    assert _current_units(client, api, line.id)[0]["units"] == line.quantity


def test_at_refuses_fractional_and_negative_unit_changes(base_url):
    client, api = _at(base_url)
    line = _writable_kb4_line()
    adjustment = {
        "contractID": line.container_id,
        "serviceID": line.product_id,
        "effectiveDate": _today().isoformat(),
    }
    fractional = client.post(
        f"{api}/ContractServiceAdjustments", json={**adjustment, "unitChange": 2.5}
    )
    assert fractional.status_code == 500
    assert fractional.json() == {
        "errors": ["Input string '2.5' is not a valid integer. Path 'unitChange'."]
    }
    too_far = client.post(
        f"{api}/ContractServiceAdjustments",
        json={**adjustment, "unitChange": -(line.quantity + 1)},
    )
    assert too_far.status_code == 500 and "negative" in too_far.json()["errors"][0]
    assert client.post(f"{api}/ContractServiceAdjustments/query", json={}).status_code == 405
    assert _current_units(client, api, line.id)[0]["units"] == line.quantity
    assert _state(base_url, "autotask")["writes"] == []


def test_at_hourly_budget_latency_and_thread_limit(base_url):
    client, api = _at(base_url)
    query = {"filter": [{"op": "gt", "field": "id", "value": 0}], "MaxRecords": 1}
    _faults(base_url, "autotask", hourly_request_limit=4)
    timings = []
    for _ in range(4):
        started = time.monotonic()
        assert client.post(f"{api}/Companies/query", json=query).status_code == 200
        timings.append(time.monotonic() - started)
    assert timings[0] < 0.4 and timings[1] >= 0.5 and timings[2] >= 1.0  # 50 % and 75 % used
    over = client.post(f"{api}/Companies/query", json=query)
    assert over.status_code == 429 and "threshold" in over.json()["errors"][0]
    assert 3590 <= int(over.headers["Retry-After"]) <= 3600

    _faults(base_url, "autotask", clear=True, delay_seconds=0.5)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(client.post, f"{api}/Companies/query", json=query) for _ in range(4)]
        statuses = sorted(call.result().status_code for call in calls)
    assert statuses == [200, 200, 200, 429]


# --- Halo --------------------------------------------------------------------------------------


def _halo_token(base_url: str, scope: str = "all") -> str:
    creds = halo.demo_credentials(base_url)
    response = httpx.post(
        creds["auth_server"] + "/token",  # django-psa: auth_server + "token", with the slash
        data={
            "grant_type": "client_credentials",
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
            "scope": scope,
        },
    )
    response.raise_for_status()
    return response.json()["access_token"]


def _halo(base_url: str, scope: str = "all") -> tuple[httpx.Client, str]:
    token = _halo_token(base_url, scope)
    api = halo.demo_credentials(base_url)["resource_server"]
    return httpx.Client(headers={"Authorization": f"Bearer {token}"}), api


def test_halo_token_endpoint(base_url):
    creds = halo.demo_credentials(base_url)
    form = {
        "grant_type": "client_credentials",
        "client_id": creds["client_id"],
        "client_secret": creds["client_secret"],
        "scope": "all",
    }
    granted = httpx.post(creds["auth_server"] + "/token", data=form).json()
    assert granted["token_type"] == "Bearer" and granted["expires_in"] == 3600
    assert granted["scope"] == "all" and len(granted["access_token"]) > 40
    basic = httpx.post(
        f"{creds['auth_server']}/token?tenant=demo",
        data={"grant_type": "client_credentials"},
        auth=(creds["client_id"], creds["client_secret"]),
    )
    assert basic.status_code == 200
    wrong = httpx.post(creds["auth_server"] + "/token", data={**form, "client_secret": "x"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    grant = httpx.post(creds["auth_server"] + "/token", data={**form, "grant_type": "password"})
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    scope = httpx.post(creds["auth_server"] + "/token", data={**form, "scope": "admin"})
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"


def test_halo_lists_page_with_record_count(base_url):
    client, api = _halo(base_url)
    served = [c for c in DEMO.companies if c.company_type != "Vendor"]
    active = [c for c in served if c.active]
    pages = []
    for page in range(1, 5):
        body = client.get(
            f"{api}/Client", params={"pageinate": "true", "page_size": 50, "page_no": page}
        ).json()
        assert body["record_count"] == len(active) and body["page_no"] == page
        pages.append(body["clients"])
    assert [len(p) for p in pages] == [50, 50, 50, len(active) - 150]
    everyone = client.get(f"{api}/Client", params={"includeinactive": "true"}).json()
    assert everyone["record_count"] == len(served) and "page_no" not in everyone
    assert len(client.get(f"{api}/client", params={"count": 7}).json()["clients"]) == 7

    items = client.get(f"{api}/Item").json()
    assert items["record_count"] == 19 and len(items["items"]) == 19  # 20 less the legacy one
    legacy = client.get(f"{api}/Item", params={"includeinactive": "true", "search": "legacy"})
    assert [i["internalreference"] for i in legacy.json()["items"]] == ["KB4-GOLD-OLD"]

    company = DEMO.containers[0].company_id
    mine = [c for c in DEMO.containers if c.company_id == company]
    invoices = client.get(
        f"{api}/RecurringInvoice", params={"client_id": company, "includelines": "true"}
    ).json()
    assert invoices["record_count"] == len(mine)
    assert {i["id"] for i in invoices["invoices"]} == {-c.id for c in mine}
    assert sum(len(i["lines"]) for i in invoices["invoices"]) == sum(len(c.lines) for c in mine)
    without = client.get(f"{api}/RecurringInvoice", params={"client_id": company}).json()
    assert "lines" not in without["invoices"][0]


def test_halo_updatelines_and_header_post_read_back(base_url):
    client, api = _halo(base_url)
    line = _writable_kb4_line()
    header_url = f"{api}/RecurringInvoice/{-line.container_id}"
    updated = client.post(
        f"{api}/RecurringInvoice/updatelines",
        json=[{"id": line.id, "ihid": -line.container_id, "qty_order": 42}],
    )
    assert updated.status_code == 200 and updated.json()[0]["qty_order"] == 42
    header = client.get(header_url).json()
    read_back = next(x for x in header["lines"] if x["id"] == line.id)
    assert read_back["qty_order"] == 42 and read_back["net_amount"] == round(
        42 * line.unit_price, 2
    )

    for x in header["lines"]:
        if x["id"] == line.id:
            x["qty_order"] = 43
    saved = client.post(
        f"{api}/RecurringInvoice", json=[{"id": header["id"], "lines": header["lines"]}]
    )
    assert saved.status_code == 200
    assert len(saved.json()["lines"]) == len(header["lines"])
    assert (
        next(x for x in client.get(header_url).json()["lines"] if x["id"] == line.id)["qty_order"]
        == 43
    )
    writes = _state(base_url, "halo")["writes"]
    assert [w["changes"]["qty_order"] for w in writes] == [[line.quantity, 42.0], [42.0, 43.0]]


def test_halo_refuses_calculated_lines_and_header_post_drops_missing_lines(base_url):
    client, api = _halo(base_url)
    calculated = next(line for line in DEMO.lines() if line.calculated)
    shown = client.get(f"{api}/RecurringInvoice/{-calculated.container_id}").json()
    line = next(x for x in shown["lines"] if x["id"] == calculated.id)
    assert line["recurring_invoice_quantity_type"] == 1 and line["qty_order"] == 0.0
    refused = client.post(
        f"{api}/RecurringInvoice/updatelines", json=[{"id": calculated.id, "qty_order": 5}]
    )
    assert refused.status_code == 400
    assert "calculated" in refused.json()  # a plain JSON string
    container = next(c for c in DEMO.containers if len(c.lines) >= 2 and c.status == "Active")
    header = client.get(f"{api}/RecurringInvoice/{-container.id}").json()
    client.post(
        f"{api}/RecurringInvoice", json=[{"id": header["id"], "lines": header["lines"][:1]}]
    )
    assert len(client.get(f"{api}/RecurringInvoice/{-container.id}").json()["lines"]) == 1
    httpx.post(f"{base_url}/_sandbox/halo/reset").raise_for_status()
    client, api = _halo(base_url)  # tokens do not survive a reset
    restored = client.get(f"{api}/RecurringInvoice/{-container.id}").json()
    assert len(restored["lines"]) == len(container.lines)


def test_halo_auth_scope_rate_limit_and_faults(base_url):
    client, api = _halo(base_url)
    bad = httpx.get(f"{api}/Client", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401 and bad.content == b""
    assert bad.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    reader, _ = _halo(base_url, scope="read:invoices read:customers")
    assert reader.get(f"{api}/Client").status_code == 200
    assert reader.get(f"{api}/Item").status_code == 403
    line = _writable_kb4_line()
    forbidden = reader.post(
        f"{api}/RecurringInvoice/updatelines", json=[{"id": line.id, "qty_order": 1}]
    )
    assert forbidden.status_code == 403

    _faults(base_url, "halo", rate_limit_per_minute=2)
    assert [client.get(f"{api}/Item").status_code for _ in range(3)] == [200, 200, 429]
    assert int(client.get(f"{api}/Item").headers["Retry-After"]) >= 1

    _faults(base_url, "halo", clear=True, fail_on_requests=[11], fail_status=502)
    failed = client.get(f"{api}/Item")
    assert failed.status_code == 502 and failed.json()["ClassName"] == "System.Exception"
    _faults(base_url, "halo", token_lifetime_seconds=0)
    assert client.get(f"{api}/Item").status_code == 401


def test_reset_of_every_sandbox_restores_the_start(base_url):
    line = _writable_kb4_line()
    cw, cw_api = _cw(base_url)
    url = f"{cw_api}/finance/agreements/{line.container_id}/additions/{line.id}"
    cw.patch(url, json=[{"op": "replace", "path": "quantity", "value": 1}])
    _faults(base_url, "autotask", hourly_request_limit=1)
    httpx.post(f"{base_url}/_sandbox/reset").raise_for_status()
    assert cw.get(url).json()["quantity"] == line.quantity
    assert _state(base_url, "autotask")["faults"]["hourly_request_limit"] == 10_000
    assert _state(base_url, "connectwise")["requests"] == 1
