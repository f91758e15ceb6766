"""The KnowBe4 sandbox over real HTTP, checked with third-party clients (gql, httpx).

No database: these tests only need the sandbox server, started once per module on a free port.
"""

import hashlib
import math
import os
import subprocess
import sys
import time

import httpx
import pytest
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import TransportQueryError, TransportServerError
from gql.transport.httpx import HTTPXTransport

from sandboxes import data
from sandboxes.app import serve_in_thread
from sandboxes.knowbe4 import users_of

DEMO = data.partner_by_slug("demo")
DEMO_CUSTOMERS = data.customers("demo")

ACCOUNTS_2023 = """
query Accounts($per: Int, $page: Int, $status: AccountStatuses, $billingType: AccountBillingTypes,
               $search: String, $archivedUsers: Boolean, $all: Boolean,
               $sortField: AccountSortFields, $sortDirection: SortDirections) {
  accounts(per: $per, page: $page, status: $status, billingType: $billingType, search: $search,
           archivedUsers: $archivedUsers, all: $all, sortField: $sortField,
           sortDirection: $sortDirection) {
    nodes {
      id companyName displayName domain archived billingType numberOfSeats userCount
      subscriptionEndDate trialExpirationDate createdAt partnerDisplayName hasApi
      subscriptionObject { id friendlyName subscriptionLevel hasApi hasUserEventApi }
      purchasedSkus { skuCode title expiresAt status active gracePeriod }
    }
    pagination { page pages per totalCount }
  }
}
"""

ACCOUNTS_CURRENT = """
query Accounts($per: Int, $page: Int) {
  accounts(per: $per, page: $page) {
    nodes { id numberOfAllSeats numberOfStandardSeats allUserCount standardUserCount hasApiv2 }
    pagination { page pages per totalCount }
  }
}
"""


@pytest.fixture(scope="module")
def base_url():
    url, stop = serve_in_thread(port=0)
    yield url
    stop()


@pytest.fixture(autouse=True)
def fresh_sandbox(base_url):
    httpx.post(f"{base_url}/_sandbox/reset").raise_for_status()


def graphql(base_url, key, query, variables=None, region="us") -> httpx.Response:
    return httpx.post(
        f"{base_url}/knowbe4/{region}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def accounts(base_url, key=DEMO.key, **variables) -> dict:
    response = graphql(base_url, key, ACCOUNTS_2023, variables)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["accounts"]


def configure(base_url, key, **settings) -> dict:
    response = httpx.post(f"{base_url}/_sandbox/knowbe4/keys/{key}", json=settings)
    assert response.status_code == 200, response.text
    return response.json()


def gql_client(base_url, key, region="us") -> Client:
    transport = HTTPXTransport(
        url=f"{base_url}/knowbe4/{region}/graphql",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    return Client(transport=transport, fetch_schema_from_transport=True)


def reporting(base_url, customer, path, region=None, **params) -> httpx.Response:
    region = region or data.partner_by_slug(customer.partner).region
    return httpx.get(
        f"{base_url}/knowbe4-api/{region}{path}",
        params=params,
        headers={"Authorization": f"Bearer {data.reporting_key(customer)}"},
    )


def api_customer(predicate):
    """The first demo customer with Reporting API access that matches."""
    return next(
        c
        for c in DEMO_CUSTOMERS
        if c.subscription_level in data.API_LEVELS and not c.archived and predicate(c)
    )


# --- the universe ------------------------------------------------------------------------------


def test_partners_and_sizes():
    sizes = {
        p.slug: (p.region, p.size, len(data.customers(p.slug))) for p in data.PARTNERS.values()
    }
    assert sizes == {
        "demo": ("us", 160, 160),
        "northwind": ("eu", 150, 150),
        "maple": ("ca", 150, 150),
        "bench": ("us", 5000, 5000),
        "revoked": ("us", 25, 25),
        "flaky": ("us", 150, 150),
        "slow": ("us", 150, 150),
        "throttled": ("us", 150, 150),
    }
    assert DEMO.key == data.DEMO_PARTNER_KEY
    assert DEMO.key.startswith("kb4-demo-") and len(DEMO.key) == 41
    ids = [c.id for p in data.PARTNERS.values() for c in data.customers(p.slug)]
    assert len(ids) == len(set(ids)) == 5935
    assert [c.id for c in DEMO_CUSTOMERS] == sorted(c.id for c in DEMO_CUSTOMERS)
    assert len({c.name for c in DEMO_CUSTOMERS}) == 160
    assert {"Café Lumière", "Baker & Taylor Law", "J.N.R. Holdings"} <= {
        c.name for c in DEMO_CUSTOMERS
    }


def _universe_digest_script() -> str:
    return (
        "import hashlib; from sandboxes import data; "
        "rows = [repr((p, data.customers(p.slug))) for p in data.PARTNERS.values()]; "
        "print(hashlib.sha256(repr(rows).encode()).hexdigest())"
    )


def test_universe_is_the_same_in_every_process():
    rows = [repr((p, data.customers(p.slug))) for p in data.PARTNERS.values()]
    here = hashlib.sha256(repr(rows).encode()).hexdigest()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", _universe_digest_script()],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
        )
        assert out.stdout.strip() == here


# --- Partner GraphQL ---------------------------------------------------------------------------


def test_gql_pages_through_the_demo_partner_accounts(base_url):
    client = gql_client(base_url, DEMO.key)
    seen, paginations = [], []
    with client as session:
        assert "numberOfSeats" in client.schema.type_map["Account"].fields
        assert "numberOfAllSeats" not in client.schema.type_map["Account"].fields
        document = gql(ACCOUNTS_2023)
        page = 1
        while True:
            request = GraphQLRequest(document, variable_values={"per": 25, "page": page})
            result = session.execute(request)["accounts"]
            seen += result["nodes"]
            paginations.append(result["pagination"])
            if result["pagination"]["page"] >= result["pagination"]["pages"]:
                break
            page += 1

    assert paginations == [
        {"page": n, "pages": 7, "per": 25, "totalCount": 160} for n in range(1, 8)
    ]
    assert [len(p) for p in (seen[i : i + 25] for i in range(0, 160, 25))] == [25] * 6 + [10]
    assert [n["id"] for n in seen] == [c.id for c in DEMO_CUSTOMERS]

    node = next(n for n in seen if n["companyName"] == "Baker & Taylor Law")
    customer = next(c for c in DEMO_CUSTOMERS if c.name == "Baker & Taylor Law")
    assert node["numberOfSeats"] == str(customer.seats)
    assert node["userCount"] == customer.active_users
    assert node["billingType"] == customer.billing_type
    assert node["domain"] == customer.domain
    assert node["subscriptionEndDate"] == customer.subscription_end.isoformat()
    assert node["subscriptionObject"]["subscriptionLevel"] == customer.subscription_level
    assert node["partnerDisplayName"] == DEMO.name
    assert [s["skuCode"] for s in node["purchasedSkus"]] == list(customer.skus)


def test_per_is_clamped_to_the_documented_minimum(base_url):
    assert accounts(base_url, per=10)["pagination"] == {
        "page": 1,
        "pages": 7,
        "per": 25,
        "totalCount": 160,
    }
    everything = accounts(base_url, all=True)
    assert len(everything["nodes"]) == 160
    assert everything["pagination"] == {"page": 1, "pages": 1, "per": 160, "totalCount": 160}
    assert accounts(base_url, per=25, page=8)["nodes"] == []


def test_bench_partner_has_fifty_pages_of_one_hundred(base_url):
    bench = data.partner_by_slug("bench")
    last = accounts(base_url, bench.key, per=100, page=50)
    assert last["pagination"] == {"page": 50, "pages": 50, "per": 100, "totalCount": 5000}
    assert [n["id"] for n in last["nodes"]] == [c.id for c in data.customers("bench")[4900:]]


def test_current_schema_generation(base_url):
    configure(base_url, DEMO.key, schema="current")
    client = gql_client(base_url, DEMO.key)
    with client as session:
        fields = client.schema.type_map["Account"].fields
        assert {"numberOfAllSeats", "allUserCount", "hasApiv2"} <= set(fields)
        assert not {"numberOfSeats", "userCount"} & set(fields)
        result = session.execute(GraphQLRequest(ACCOUNTS_CURRENT, variable_values={"per": 25}))
    first = result["accounts"]["nodes"][0]
    customer = DEMO_CUSTOMERS[0]
    assert first == {
        "id": customer.id,
        "numberOfAllSeats": customer.seats,
        "numberOfStandardSeats": customer.seats,
        "allUserCount": customer.active_users,
        "standardUserCount": customer.active_users,
        "hasApiv2": customer.subscription_level in data.API_LEVELS,
    }

    # The 2023 field names are a validation error, answered like real GraphQL: 200 with errors.
    response = graphql(base_url, DEMO.key, "{ accounts { nodes { numberOfSeats } } }")
    assert response.status_code == 200
    assert "data" not in response.json()
    [error] = response.json()["errors"]
    assert error["message"].startswith("Cannot query field 'numberOfSeats' on type 'Account'.")


def test_2023_schema_rejects_current_field_names(base_url):
    response = graphql(base_url, DEMO.key, "{ accounts { nodes { id allUserCount } } }")
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["message"].startswith("Cannot query field 'allUserCount' on type 'Account'.")


def test_server_default_schema_option():
    url, stop = serve_in_thread(port=0, knowbe4_schema="current")
    try:
        ok = graphql(
            url, DEMO.key, "{ accounts { pagination { totalCount } nodes { allUserCount } } }"
        )
        assert ok.json()["data"]["accounts"]["pagination"]["totalCount"] == 160
        old = graphql(url, DEMO.key, "{ accounts { nodes { userCount } } }")
        assert "errors" in old.json()
    finally:
        stop()


def test_archived_users_flag_changes_the_user_count(base_url):
    active_only = accounts(base_url, all=True, archivedUsers=False)["nodes"]
    with_archived = accounts(base_url, all=True, archivedUsers=True)["nodes"]
    by_id = {c.id: c for c in DEMO_CUSTOMERS}
    assert [n["userCount"] for n in active_only] == [
        by_id[n["id"]].active_users for n in active_only
    ]
    assert [n["userCount"] for n in with_archived] == [
        by_id[n["id"]].active_users + by_id[n["id"]].archived_users for n in with_archived
    ]
    assert sum(n["userCount"] for n in with_archived) > sum(n["userCount"] for n in active_only)


def test_filters(base_url):
    active = accounts(base_url, status="ACTIVE", per=100, all=True)
    assert active["pagination"]["totalCount"] == sum(not c.archived for c in DEMO_CUSTOMERS) == 150
    assert not any(n["archived"] for n in active["nodes"])

    archived = accounts(base_url, status="ARCHIVED")
    assert archived["pagination"]["totalCount"] == 10
    assert all(n["archived"] for n in archived["nodes"])

    trials = accounts(base_url, billingType="TRIAL", all=True)
    expected = [c.id for c in DEMO_CUSTOMERS if c.billing_type == "TRIAL"]
    assert [n["id"] for n in trials["nodes"]] == expected and len(expected) == 13
    assert all(n["subscriptionEndDate"] is None for n in trials["nodes"])
    assert all(n["trialExpirationDate"] for n in trials["nodes"])

    paid_active = accounts(base_url, billingType="PAID", status="ACTIVE", all=True)
    assert paid_active["pagination"]["totalCount"] == sum(
        c.billing_type == "PAID" and not c.archived for c in DEMO_CUSTOMERS
    )

    dental = accounts(base_url, search="DENTAL", all=True)
    expected = [
        c.id
        for c in DEMO_CUSTOMERS
        if "dental" in c.name.lower() or "dental" in c.display_name.lower() or "dental" in c.domain
    ]
    assert [n["id"] for n in dental["nodes"]] == expected and len(expected) == 12

    by_seats = accounts(base_url, sortField="SEATS", sortDirection="DESCENDING", per=25)
    top = sorted((c for c in DEMO_CUSTOMERS if c.seats is not None), key=lambda c: -c.seats)
    assert [n["id"] for n in by_seats["nodes"]] == [c.id for c in top[:25]]

    nothing = accounts(base_url, search="no such customer anywhere")
    assert nothing["nodes"] == []
    assert nothing["pagination"] == {"page": 1, "pages": 0, "per": 25, "totalCount": 0}


def test_account_by_id_is_null_for_another_partners_account(base_url):
    query = "query($id: Int) { account(id: $id) { id companyName userCount } }"
    own = DEMO_CUSTOMERS[5]
    response = graphql(base_url, DEMO.key, query, {"id": own.id})
    assert response.json() == {
        "data": {"account": {"id": own.id, "companyName": own.name, "userCount": own.active_users}}
    }
    other = data.customers("bench")[0]
    assert graphql(base_url, DEMO.key, query, {"id": other.id}).json() == {
        "data": {"account": None}
    }


def test_wrong_region_is_401(base_url):
    response = graphql(base_url, DEMO.key, "{ accounts { nodes { id } } }", region="eu")
    assert response.status_code == 401
    assert response.json() == {
        "errors": [{"message": "Unauthorized: the API token is invalid, expired or revoked"}]
    }
    northwind = data.partner_by_slug("northwind")
    assert accounts_total(base_url, northwind.key, "eu") == 150
    with (
        pytest.raises(TransportQueryError, match="Unauthorized"),
        gql_client(base_url, northwind.key, region="us"),
    ):
        pass


def accounts_total(base_url, key, region) -> int:
    query = "{ accounts { pagination { totalCount } } }"
    response = graphql(base_url, key, query, region=region)
    assert response.status_code == 200, response.text
    return response.json()["data"]["accounts"]["pagination"]["totalCount"]


def test_unknown_and_reporting_keys_are_401_on_graphql(base_url):
    for key in ("not-a-key", data.reporting_key(DEMO_CUSTOMERS[0])):
        assert graphql(base_url, key, "{ accounts { nodes { id } } }").status_code == 401
    response = httpx.post(f"{base_url}/knowbe4/us/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 401


def test_revoked_key_is_401(base_url):
    revoked = data.partner_by_slug("revoked")
    assert graphql(base_url, revoked.key, "{ __typename }").status_code == 401
    assert graphql(base_url, DEMO.key, "{ __typename }").status_code == 200
    configure(base_url, DEMO.key, revoked=True)
    assert graphql(base_url, DEMO.key, "{ __typename }").status_code == 401


def test_rate_limit_answers_429_with_retry_after(base_url):
    throttled = data.partner_by_slug("throttled")
    statuses = [graphql(base_url, throttled.key, "{ __typename }") for _ in range(5)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 200, 429]
    assert statuses[-1].headers["Retry-After"] == "1"
    assert statuses[-1].json() == {
        "errors": [{"message": "Rate limit exceeded: at most 4 requests per second"}]
    }
    time.sleep(1.05)
    assert graphql(base_url, throttled.key, "{ __typename }").status_code == 200

    configure(base_url, DEMO.key, rate_limit_per_second=2)
    codes = [graphql(base_url, DEMO.key, "{ __typename }").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_fail_on_requests_fails_exactly_that_request(base_url):
    flaky = data.partner_by_slug("flaky")
    responses = [graphql(base_url, flaky.key, "{ __typename }") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 500, 200]
    assert responses[2].json() == {"errors": [{"message": "Internal Server Error"}]}
    settings = httpx.get(f"{base_url}/_sandbox/knowbe4/keys/{flaky.key}").json()
    assert settings["request_count"] == 4
    assert settings["fail_on_requests"] == [3]

    configure(base_url, DEMO.key, fail_on_requests=[2], fail_status=503)
    codes = [graphql(base_url, DEMO.key, "{ __typename }").status_code for _ in range(3)]
    assert codes == [200, 503, 200]


def test_html_errors_and_html_pages(base_url):
    page = httpx.get(f"{base_url}/knowbe4/us/graphql")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{base_url}/knowbe4/eu/").headers["content-type"].startswith("text/html")

    configure(base_url, DEMO.key, html_errors=True, fail_on_requests=[1])
    response = graphql(base_url, DEMO.key, "{ __typename }")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<!DOCTYPE html>")

    configure(base_url, DEMO.key, revoked=True)
    response = graphql(base_url, DEMO.key, "{ __typename }")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(TransportServerError) as failure, gql_client(base_url, DEMO.key):
        pass
    assert failure.value.code == 401


def test_slow_key_answers_after_two_seconds(base_url):
    slow = data.partner_by_slug("slow")
    started = time.monotonic()
    assert graphql(base_url, slow.key, "{ __typename }").status_code == 200
    assert time.monotonic() - started >= 2.0


def test_malformed_body_is_400(base_url):
    response = httpx.post(
        f"{base_url}/knowbe4/us/graphql",
        content=b"not json",
        headers={"Authorization": f"Bearer {DEMO.key}"},
    )
    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "The request body is not JSON"}]}


# --- control API -------------------------------------------------------------------------------


def test_control_api_validates(base_url):
    url = f"{base_url}/_sandbox/knowbe4/keys"
    assert httpx.post(f"{url}/{DEMO.key}", json={"nope": 1}).status_code == 400
    assert httpx.post(f"{url}/{DEMO.key}", json={"revoked": "yes"}).status_code == 400
    assert httpx.post(f"{url}/{DEMO.key}", json={"schema": "2019"}).status_code == 400
    assert httpx.post(f"{url}/{DEMO.key}", json={"fail_on_requests": [0]}).status_code == 400
    assert httpx.post(f"{url}/{DEMO.key}", json={"daily_cap": -1}).status_code == 400
    assert httpx.get(f"{url}/no-such-key").status_code == 404

    listing = httpx.get(url).json()
    assert [p["slug"] for p in listing["partners"]] == list(p.slug for p in data.PARTNERS.values())
    assert listing["partners"][0]["graphql_url"] == f"{base_url}/knowbe4/us/graphql"
    sample = listing["reporting_key_samples"][0]
    assert sample["key"] == data.reporting_key(data.customer_by_id(sample["customer_id"]))
    keys = httpx.get(f"{base_url}/_sandbox/knowbe4/reporting-keys?partner=maple").json()
    assert len(keys) == 150 and {k["region"] for k in keys} == {"ca"}


def test_reset_restores_the_start(base_url):
    flaky = data.partner_by_slug("flaky")
    configure(base_url, DEMO.key, revoked=True, delay_seconds=0.5, schema="current")
    configure(base_url, flaky.key, fail_on_requests=[])
    graphql(base_url, flaky.key, "{ __typename }")
    assert "knowbe4" in httpx.post(f"{base_url}/_sandbox/reset").json()["reset"]

    demo = httpx.get(f"{base_url}/_sandbox/knowbe4/keys/{DEMO.key}").json()
    assert demo == {
        "key": DEMO.key,
        "kind": "partner",
        "region": "us",
        "partner": "demo",
        "revoked": False,
        "rate_limit_per_second": None,
        "rate_limit_per_minute": None,
        "daily_cap": None,
        "fail_on_requests": [],
        "fail_status": 500,
        "delay_seconds": 0.0,
        "html_errors": False,
        "schema": "2023",
        "mangle": None,
        "mangle_on_requests": [],
        "request_count": 0,
    }
    flaky_now = httpx.get(f"{base_url}/_sandbox/knowbe4/keys/{flaky.key}").json()
    assert (flaky_now["fail_on_requests"], flaky_now["request_count"]) == ([3], 0)


# --- Reporting REST API ------------------------------------------------------------------------


def test_reporting_account_of_a_paid_customer(base_url):
    customer = api_customer(lambda c: c.billing_type == "PAID")
    response = reporting(base_url, customer, "/v1/account")
    assert response.status_code == 200
    assert response.headers["X-Request-Id"]
    body = response.json()
    assert list(body) == [
        "name",
        "type",
        "domains",
        "admins",
        "subscription_level",
        "subscription_end_date",
        "number_of_seats",
        "current_risk_score",
    ]
    assert (body["name"], body["type"], body["domains"]) == (
        customer.name,
        "paid",
        [customer.domain],
    )
    assert body["number_of_seats"] == customer.seats
    assert body["subscription_level"] == customer.subscription_level
    assert body["subscription_end_date"] == customer.subscription_end.isoformat()


def test_reporting_account_of_a_trial_lacks_subscription_keys(base_url):
    customer = api_customer(lambda c: c.billing_type == "TRIAL")
    body = reporting(base_url, customer, "/v1/account").json()
    assert list(body) == ["name", "type", "domains", "admins", "current_risk_score"]
    assert body["type"] == "trial"


def test_reporting_needs_platinum_or_diamond(base_url):
    gold = next(c for c in DEMO_CUSTOMERS if c.subscription_level == "Gold")
    response = reporting(base_url, gold, "/v1/account")
    assert response.status_code == 403
    assert response.json() == {
        "message": "Forbidden: the API requires a Platinum or Diamond subscription"
    }


def test_reporting_users_pages_to_an_empty_page(base_url):
    customer = api_customer(lambda c: 200 < c.active_users <= 300 and c.archived_users > 0)
    users, pages = [], 0
    while True:
        pages += 1
        batch = reporting(base_url, customer, "/v1/users", status="active", page=pages).json()
        if batch == []:
            break
        assert len(batch) == min(100, customer.active_users - len(users))
        users += batch
    assert pages == math.ceil(customer.active_users / 100) + 1
    assert len(users) == customer.active_users
    assert {u["status"] for u in users} == {"active"}
    assert all(u["archived_at"] is None for u in users)
    assert len({u["email"] for u in users}) == len(users)
    assert all(u["email"].endswith("@" + customer.domain) for u in users)

    time.sleep(1.05)  # keep under 4 requests per second
    archived = reporting(base_url, customer, "/v1/users", status="archived", per_page=500).json()
    assert len(archived) == customer.archived_users
    assert all(u["status"] == "archived" and u["archived_at"] for u in archived)
    everyone = reporting(base_url, customer, "/v1/users", per_page=500).json()
    assert len(everyone) == customer.active_users + customer.archived_users
    single = reporting(base_url, customer, f"/v1/users/{users[0]['id']}").json()
    assert single == users[0]


def test_reporting_per_page_maximum_is_500(base_url):
    customer = api_customer(lambda c: c.active_users > 500)
    batch = reporting(base_url, customer, "/v1/users", status="active", per_page=1000).json()
    assert len(batch) == 500


def test_reporting_users_include_service_accounts(base_url):
    emails = []
    for customer in DEMO_CUSTOMERS:
        if customer.subscription_level in data.API_LEVELS and customer.active_users >= 10:
            emails += [u["email"] for u in _users(customer)]
    assert any(e.startswith("svc-backup@") for e in emails)
    assert any(e.startswith("scanner@") for e in emails)


def _users(customer):
    return [u for u in users_of(customer.id) if u["status"] == "active"]


def test_reporting_rate_limits_answer_429_without_headers(base_url):
    customer = api_customer(lambda c: True)
    responses = [reporting(base_url, customer, "/v1/account") for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 429]
    assert "Retry-After" not in responses[-1].headers
    assert not [h for h in responses[-1].headers if h.lower().startswith("x-ratelimit")]
    assert responses[-1].json() == {"message": "Rate limit exceeded: at most 4 requests per second"}

    other = api_customer(lambda c: c.id != customer.id)
    settings = configure(base_url, data.reporting_key(other), daily_cap=2)
    assert settings["rate_limit_per_minute"] == 50
    codes = [reporting(base_url, other, "/v1/account").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_reporting_key_is_bound_to_its_region_and_api(base_url):
    customer = api_customer(lambda c: True)
    assert reporting(base_url, customer, "/v1/account", region="eu").status_code == 401
    assert reporting(base_url, customer, "/api/v1/account").status_code == 404
    response = httpx.get(
        f"{base_url}/knowbe4-api/us/v1/account", headers={"Authorization": f"Bearer {DEMO.key}"}
    )
    assert response.status_code == 401
    assert response.json() == {
        "message": "Unauthorized: the API token is invalid, expired or revoked"
    }
