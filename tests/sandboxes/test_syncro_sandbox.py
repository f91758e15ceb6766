"""The Syncro sandbox over real HTTP: pages of 25 with `meta`, invoice schedules and their line
items, the quantity PUT and its write log, token permissions, and the shared fault switches.

No database: the sandbox server is started once for the module on a free port and reset after
every test.
"""

import math

import httpx
import pytest

from sandboxes import psa_data, syncro
from sandboxes.app import serve_in_thread

DEMO = psa_data.universe("demo")
SERVED = sorted((c for c in DEMO.companies if c.company_type != "Vendor"), key=lambda c: c.id)
ENABLED = [c for c in SERVED if c.active]
LIVE_LINES = [line for line in DEMO.lines() if line.cancelled_date is None]


@pytest.fixture(scope="module")
def base_url():
    url, stop = serve_in_thread(port=0)
    yield url
    stop()


@pytest.fixture(autouse=True)
def fresh_sandboxes(base_url):
    yield
    httpx.post(f"{base_url}/_sandbox/reset").raise_for_status()


@pytest.fixture
def api(base_url) -> str:
    return syncro.demo_credentials(base_url)["api_url"]


@pytest.fixture
def client(base_url) -> httpx.Client:
    token = syncro.demo_credentials(base_url)["api_token"]
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as http:
        yield http


def _faults(base_url: str, **faults) -> dict:
    response = httpx.post(f"{base_url}/_sandbox/syncro/faults", json=faults)
    response.raise_for_status()
    return response.json()


def _state(base_url: str) -> dict:
    return httpx.get(f"{base_url}/_sandbox/syncro/state").json()


def _writable_line() -> psa_data.BillingLine:
    """An uncancelled line of an active container that Syncro does not count from assets."""
    return next(
        line
        for container in DEMO.containers
        if container.status == "Active"
        for line in container.lines
        if line.cancelled_date is None and not line.calculated
    )


def _line_url(api: str, line: psa_data.BillingLine) -> str:
    return f"{api}/schedules/{line.container_id}/line_items/{line.id}"


def _read_line(client: httpx.Client, api: str, line: psa_data.BillingLine) -> dict:
    schedule = client.get(f"{api}/schedules/{line.container_id}").json()["schedule"]
    return next(item for item in schedule["lines"] if item["id"] == line.id)


# --- credentials -------------------------------------------------------------------------------


def test_credentials_and_connection_fields(base_url):
    creds = syncro.partner_credentials(base_url + "/", "demo")
    assert creds["subdomain"] == "demo"
    assert creds["api_url"] == f"{base_url}/syncro/demo/api/v1"
    assert creds["api_token"] != syncro.partner_credentials(base_url, "bench")["api_token"]
    settings, secrets = syncro.connection_fields(base_url)
    assert settings == {"api_url": creds["api_url"]}
    assert secrets == {"api_token": creds["api_token"]}


# --- reads -------------------------------------------------------------------------------------


def test_customers_page_by_25_with_meta(client, api):
    pages = math.ceil(len(ENABLED) / 25)
    seen, sizes = [], []
    for page in range(1, pages + 1):
        body = client.get(f"{api}/customers", params={"page": page}).json()
        assert body["meta"] == {
            "total_pages": pages,
            "total_entries": len(ENABLED),
            "per_page": 25,
            "page": page,
        }
        sizes.append(len(body["customers"]))
        seen += body["customers"]
    assert sizes == [25] * (pages - 1) + [len(ENABLED) - 25 * (pages - 1)]
    assert 0 < sizes[-1] < 25  # the last page is short
    assert [c["id"] for c in seen] == [c.id for c in ENABLED]
    beyond = client.get(f"{api}/customers", params={"page": pages + 1}).json()
    assert beyond["customers"] == [] and beyond["meta"]["page"] == pages + 1
    first = client.get(f"{api}/customers").json()
    assert first["meta"]["page"] == 1 and first["customers"] == seen[:25]

    customer = seen[0]
    assert customer["business_name"] == ENABLED[0].name and customer["disabled"] is False
    assert customer["fullname"] == f"{customer['firstname']} {customer['lastname']}"
    assert customer["business_then_name"] == ENABLED[0].name
    assert customer["properties"] == {} and customer["contacts"] == []
    one = client.get(f"{api}/customers/{customer['id']}").json()
    assert one == {"customer": customer}


def test_disabled_customers_only_with_include_disabled(client, api):
    everyone = client.get(f"{api}/customers", params={"include_disabled": "true"}).json()
    assert everyone["meta"]["total_entries"] == len(SERVED)
    assert everyone["meta"]["total_pages"] == math.ceil(len(SERVED) / 25)
    disabled = next(c for c in SERVED if not c.active)
    listed = [
        c
        for page in range(1, everyone["meta"]["total_pages"] + 1)
        for c in client.get(
            f"{api}/customers", params={"include_disabled": "true", "page": page}
        ).json()["customers"]
    ]
    assert next(c for c in listed if c["id"] == disabled.id)["disabled"] is True
    vendors = {c.name for c in DEMO.companies if c.company_type == "Vendor"}
    assert not vendors & {c["business_name"] for c in listed}
    named = client.get(f"{api}/customers", params={"business_name": ENABLED[3].name.upper()})
    assert ENABLED[3].id in [c["id"] for c in named.json()["customers"]]


def test_products_map_the_catalogue(client, api):
    body = client.get(f"{api}/products").json()
    catalogue = psa_data.catalogue()
    assert body["meta"] == {"total_pages": 1, "total_entries": 20, "per_page": 25, "page": 1}
    by_code = {p["upc_code"]: p for p in body["products"]}
    plat = by_code["KB4-PLAT"]
    expected = next(p for p in catalogue if p.identifier == "KB4-PLAT")
    assert plat["name"] == expected.name and plat["id"] == expected.id
    assert plat["price_retail"] == expected.unit_price and plat["price_cost"] == expected.unit_cost
    assert plat["product_category"] == "Security Awareness" and plat["disabled"] is False
    assert by_code["KB4-GOLD-OLD"]["disabled"] is True
    sku = client.get(f"{api}/products", params={"sku": "kb4-plat"}).json()["products"]
    assert [p["id"] for p in sku] == [expected.id]
    assert client.get(f"{api}/products/{expected.id}").json() == {"product": plat}


def test_schedules_carry_their_lines_and_filter_by_customer(client, api):
    body = client.get(f"{api}/schedules").json()
    assert body["meta"]["total_entries"] == len(DEMO.containers)
    assert body["meta"]["total_pages"] == math.ceil(len(DEMO.containers) / 25)
    assert len(body["schedules"]) == 25

    company = DEMO.containers[0].company_id
    mine = [c for c in DEMO.containers if c.company_id == company]
    filtered = client.get(f"{api}/schedules", params={"customer_id": company}).json()
    assert {s["id"] for s in filtered["schedules"]} == {c.id for c in mine}
    assert filtered["meta"]["total_entries"] == len(mine)
    container = mine[0]
    schedule = next(s for s in filtered["schedules"] if s["id"] == container.id)
    assert schedule["customer_id"] == company and schedule["name"] == container.name
    assert schedule["frequency"] == "Monthly"
    assert schedule["next_run"] == "2026-12-01T00:00:00.000Z"
    assert schedule["paused"] is (container.status != "Active")
    live = [line for line in container.lines if line.cancelled_date is None]
    assert [x["id"] for x in schedule["lines"]] == [line.id for line in live]
    assert client.get(f"{api}/schedules/{container.id}").json() == {"schedule": schedule}

    paused = next(c for c in DEMO.containers if c.status != "Active")
    assert client.get(f"{api}/schedules/{paused.id}").json()["schedule"]["paused"] is True


def test_every_uncancelled_line_is_served_with_a_decimal_string_quantity(client, api):
    total = client.get(f"{api}/schedules").json()["meta"]["total_pages"]
    served = {
        line["id"]: line
        for page in range(1, total + 1)
        for schedule in client.get(f"{api}/schedules", params={"page": page}).json()["schedules"]
        for line in schedule["lines"]
    }
    assert set(served) == {line.id for line in LIVE_LINES}
    line = _writable_line()
    item = served[line.id]
    assert item["quantity"] == f"{line.quantity}.0" and isinstance(item["quantity"], str)
    assert item["schedule_id"] == line.container_id and item["product_id"] == line.product_id
    assert item["retail_cents"] == round(line.unit_price * 100)
    assert item["price_retail"] == line.unit_price and item["price_cost"] == line.unit_cost
    assert item["asset_type_id"] is None and item["recurring_type_id"] is None
    assert set(item) >= {"position", "taxable", "user_id", "device_ids", "one_time_charge"}
    calculated = next(x for x in LIVE_LINES if x.calculated)
    assert served[calculated.id]["asset_type_id"] == 1
    assert served[calculated.id]["recurring_type_id"] == "asset"
    assert served[calculated.id]["quantity"] == f"{calculated.quantity}.0"


# --- writes ------------------------------------------------------------------------------------


def test_put_quantity_reads_back_and_is_logged(base_url, client, api):
    line = _writable_line()
    answer = client.put(_line_url(api, line), json={"quantity": "12"})
    assert answer.status_code == 200
    assert answer.json()["schedule_line_item"]["quantity"] == "12.0"
    assert answer.json()["schedule_line_item"]["id"] == line.id
    assert _read_line(client, api, line)["quantity"] == "12.0"
    client.put(_line_url(api, line), json={"quantity": 13.5})
    client.put(_line_url(api, line), json={"schedule_line_item": {"quantity": "14"}})
    assert _read_line(client, api, line)["quantity"] == "14.0"
    client.put(_line_url(api, line), json={"quantity": "14.00"})  # no change, no log entry

    writes = _state(base_url)["writes"]
    assert [w["changes"] for w in writes] == [
        {"quantity": [float(line.quantity), 12.0]},
        {"quantity": [12.0, 13.5]},
        {"quantity": [13.5, 14.0]},
    ]
    assert {(w["partner"], w["method"], w["resource"]) for w in writes} == {
        ("demo", "PUT", "schedules/line_items")
    }
    assert writes[0]["id"] == line.id and writes[0]["schedule_id"] == line.container_id


def test_bad_quantities_and_asset_lines_are_refused_with_422(client, api):
    line = _writable_line()
    for bad, message in (
        ("-1", "Quantity must be greater than or equal to 0"),
        (-3, "Quantity must be greater than or equal to 0"),
        ("lots", "Quantity is not a number"),
        (True, "Quantity is not a number"),
    ):
        refused = client.put(_line_url(api, line), json={"quantity": bad})
        assert refused.status_code == 422 and refused.json() == {"error": [message]}
    calculated = next(x for x in LIVE_LINES if x.calculated)
    refused = client.put(_line_url(api, calculated), json={"quantity": "3"})
    assert refused.status_code == 422
    assert refused.json() == {
        "error": ["Quantity is calculated from assets on this line and cannot be set"]
    }
    assert _read_line(client, api, line)["quantity"] == f"{line.quantity}.0"
    assert _read_line(client, api, calculated)["quantity"] == f"{calculated.quantity}.0"


def test_add_and_remove_line_items(base_url, client, api):
    line = _writable_line()
    schedule_url = f"{api}/schedules/{line.container_id}"
    before = len(client.get(schedule_url).json()["schedule"]["lines"])
    added = client.post(f"{schedule_url}/add_line_item", json={"product_id": 906, "quantity": 4})
    assert added.status_code == 200
    item = added.json()["schedule_line_item"]
    assert item["name"] == "PhishER Plus add-on" and item["quantity"] == "4.0"
    assert len(client.get(schedule_url).json()["schedule"]["lines"]) == before + 1
    nameless = client.post(f"{schedule_url}/add_line_item", json={"quantity": 1})
    assert nameless.status_code == 422 and nameless.json() == {"error": ["Name can't be blank"]}
    removed = client.post(
        f"{schedule_url}/remove_line_item", json={"schedule_line_item_id": item["id"]}
    )
    assert removed.status_code == 200
    assert len(client.get(schedule_url).json()["schedule"]["lines"]) == before
    assert [w["changes"] for w in _state(base_url)["writes"]] == [
        {"created": [None, 4.0]},
        {"deleted": [4.0, None]},
    ]


def test_reject_writes_and_ignore_writes(base_url, client, api):
    line = _writable_line()
    _faults(base_url, reject_writes="Schedule is locked while invoices run")
    locked = client.put(_line_url(api, line), json={"quantity": "5"})
    assert locked.status_code == 422
    assert locked.json() == {"error": ["Schedule is locked while invoices run"]}
    _faults(base_url, clear=True, ignore_writes=True)
    ignored = client.put(_line_url(api, line), json={"quantity": "5"})
    assert ignored.status_code == 200
    assert ignored.json()["schedule_line_item"]["quantity"] == "5.0"
    assert _read_line(client, api, line)["quantity"] == f"{line.quantity}.0"
    assert _state(base_url)["writes"] == []


def test_reset_restores_quantities(base_url, client, api):
    line = _writable_line()
    client.put(_line_url(api, line), json={"quantity": "99"})
    assert _read_line(client, api, line)["quantity"] == "99.0"
    httpx.post(f"{base_url}/_sandbox/syncro/reset").raise_for_status()
    assert _read_line(client, api, line)["quantity"] == f"{line.quantity}.0"
    assert _state(base_url)["writes"] == []


# --- auth and errors ---------------------------------------------------------------------------


def test_tokens_work_only_under_their_own_subdomain(base_url, api):
    demo_token = syncro.demo_credentials(base_url)["api_token"]
    bench_token = syncro.partner_credentials(base_url, "bench")["api_token"]
    for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": demo_token}):
        refused = httpx.get(f"{api}/customers", headers=headers)
        assert refused.status_code == 401 and refused.json() == {"error": "Not authorized"}
    other = httpx.get(f"{api}/customers", headers={"Authorization": f"Bearer {bench_token}"})
    assert other.status_code == 401
    by_query = httpx.get(f"{api}/customers", params={"api_key": demo_token})
    assert by_query.status_code == 200
    bench = syncro.partner_credentials(base_url, "bench")["api_url"]
    wrong_home = httpx.get(f"{bench}/products", headers={"Authorization": f"Bearer {demo_token}"})
    assert wrong_home.status_code == 401


def test_a_missing_permission_is_403(base_url, client, api):
    line = _writable_line()
    _faults(
        base_url,
        permissions=[
            "Customers - List/Search",
            "Products - List/Search",
            "Recurring Invoices - List",
        ],
    )
    assert client.get(f"{api}/schedules").status_code == 200
    forbidden = client.put(_line_url(api, line), json={"quantity": "3"})
    assert forbidden.status_code == 403
    assert forbidden.json() == {
        "error": "You do not have permission to perform this action (Recurring Invoices - Edit)"
    }
    assert _read_line(client, api, line)["quantity"] == f"{line.quantity}.0"
    _faults(base_url, permissions=["Customers - List/Search"])
    assert client.get(f"{api}/schedules").status_code == 403
    assert client.get(f"{api}/customers/{ENABLED[0].id}").status_code == 403  # View Detail
    assert client.get(f"{api}/customers").status_code == 200


def test_unknown_ids_are_json_404_and_unknown_paths_an_html_page(base_url, client, api):
    missing = client.get(f"{api}/schedules/999999")
    assert missing.status_code == 404 and missing.json() == {"error": "Not found"}
    line = _writable_line()
    other = next(c for c in DEMO.containers if c.id != line.container_id)
    wrong_schedule = client.put(
        f"{api}/schedules/{other.id}/line_items/{line.id}", json={"quantity": "2"}
    )
    assert wrong_schedule.status_code == 404
    assert client.get(f"{api}/customers/1").status_code == 404
    for url in (f"{api}/nowhere", f"{base_url}/syncro/demo/nowhere", f"{api}/schedules/x"):
        page = client.get(url)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert client.delete(_line_url(api, line)).status_code == 404  # no such route
    unknown_subdomain = client.get(f"{base_url}/syncro/nobody/api/v1/customers")
    assert unknown_subdomain.status_code == 404
    body = client.put(_line_url(api, line), content=b"{not json", headers={"Content-Type": "json"})
    assert body.status_code == 400


def test_rate_limit(base_url, client, api):
    _faults(base_url, rate_limit_per_minute=2)
    statuses = [client.get(f"{api}/products").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = client.get(f"{api}/products")
    assert "Rate limit exceeded" in limited.json()["error"]
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert _state(base_url)["rate_limited"] == 2


def test_injected_failures_html_errors_and_mangling(base_url, client, api):
    _faults(base_url, fail_on_requests=[2], fail_status=500)
    assert client.get(f"{api}/products").status_code == 200
    failed = client.get(f"{api}/products")
    assert failed.status_code == 500
    assert failed.json() == {"error": "An unexpected error occurred on the server."}
    _faults(base_url, fail_on_requests=[3], fail_status=503, html_errors=True)
    html = client.get(f"{api}/products")
    assert html.status_code == 503 and html.text.startswith("<!DOCTYPE html>")
    assert client.get(f"{api}/products").status_code == 200
    _faults(base_url, clear=True, mangle="missing_fields", mangle_on_requests=[5])
    spoiled = client.get(f"{api}/products").json()
    assert "id" not in spoiled["products"][0] and "name" not in spoiled["products"][0]
    assert _state(base_url)["requests"] == 5
    wrong = httpx.post(f"{base_url}/_sandbox/syncro/faults", json={"permissions": "all"})
    assert wrong.status_code == 400
