"""The KnowBe4 Reporting API adapter and sandbox, over real HTTP with the API's limits on."""

import datetime
import time

import httpx
import pytest

from integrations.providers.knowbe4_reporting import adapter as reporting_module
from integrations.providers.knowbe4_reporting.adapter import DailyLimitReached, ReportingAdapter
from reconcile.core.errors import (
    BadAnswer,
    CredentialRejected,
    RateLimited,
    ServerFault,
    Unreachable,
)
from sandboxes import data

REGIONS = ("us", "eu", "ca", "uk", "de")


def demo_customer(**wanted) -> data.Customer:
    """The first demo customer with these attributes (and at most `max_users` active users)."""
    max_users = wanted.pop("max_users", 10**9)
    for customer in data.customers("demo"):
        if customer.active_users <= max_users and all(
            getattr(customer, name) == value for name, value in wanted.items()
        ):
            return customer
    raise LookupError(wanted)


class Reporting:
    def __init__(self, sandbox):
        self.sandbox = sandbox

    def url(self, region="us"):
        return f"{self.sandbox.base_url}/knowbe4-api/{region}"

    def tenant(self, **spec) -> dict:
        response = httpx.post(
            f"{self.sandbox.base_url}/_sandbox/knowbe4/reporting-keys", json=spec, timeout=60
        )
        response.raise_for_status()
        return response.json()

    def adapter(self, key, region="us", **options) -> ReportingAdapter:
        return ReportingAdapter(base_url=self.url(region), credential=key, **options)

    def state(self, key) -> dict:
        return self.sandbox.key_state(key)


@pytest.fixture
def reporting(sandbox, settings):
    settings.KNOWBE4_REPORTING_URLS = {
        region: f"{sandbox.base_url}/knowbe4-api/{region}" for region in REGIONS
    }
    return Reporting(sandbox)


def fetch(adapter):
    pages = list(adapter.iter_account_pages())
    assert len(pages) == 1 and len(pages[0].accounts) == 1
    return pages[0].accounts[0]


def test_reads_the_account_and_counts_its_active_users(reporting):
    customer = demo_customer(billing_type="PAID", subscription_level="Diamond", max_users=400)
    key = data.reporting_key(customer)
    record = fetch(reporting.adapter(key))
    assert record.external_id == "account"
    assert record.name == customer.name
    assert record.domain == customer.domain
    assert record.billing_type == "paid"
    assert record.seats == customer.seats
    assert record.active_users == customer.active_users  # archived users never count
    assert record.excluded_users == 0
    assert record.subscription_level == "Diamond"
    assert record.subscription_end_date == customer.subscription_end
    [usage] = record.usage
    assert (usage.code, usage.name) == ("sat-diamond", "KnowBe4 SAT Diamond")
    assert (usage.active_users, usage.seats, usage.excluded_users) == (
        customer.active_users,
        customer.seats,
        0,
    )
    state = reporting.state(key)
    assert state["request_count"] == 2 and state["rate_limited"] == 0


def test_test_names_the_account(reporting):
    customer = demo_customer(billing_type="PAID", subscription_level="Platinum")
    adapter = reporting.adapter(data.reporting_key(customer))
    check = adapter.test()
    assert check.account_count == 1
    assert f"account “{customer.name}” (Platinum, {customer.seats:,} seats)" in check.message
    assert adapter.checked_name == customer.name
    assert reporting.state(data.reporting_key(customer))["request_count"] == 1


def test_a_trial_account_without_seats_is_imported_with_seats_unknown(reporting):
    customer = demo_customer(billing_type="TRIAL", archived=False)
    record = fetch(reporting.adapter(data.reporting_key(customer)))
    assert record.seats is None  # unknown, not zero
    assert record.subscription_level == "" and record.subscription_end_date is None
    assert record.billing_type == "trial"
    assert record.active_users == customer.active_users
    assert [(u.code, u.seats) for u in record.usage] == [("sat-trial", None)]
    assert "trial, seats unknown" in reporting.adapter(data.reporting_key(customer)).test().message


@pytest.mark.parametrize(
    "users, per_page, requests",
    [
        (25, 10, 4),  # account, pages 1 and 2 full, page 3 short: done
        (20, 10, 4),  # account, pages 1 and 2 full, page 3 empty: done
        (0, 500, 2),  # account, an empty first page
    ],
)
def test_pages_until_a_short_or_empty_page(reporting, users, per_page, requests):
    tenant = reporting.tenant(active_users=users, archived_users=7, name=f"Paging {users}")
    record = fetch(reporting.adapter(tenant["key"], per_page=per_page))
    assert record.active_users == users
    assert reporting.state(tenant["key"])["request_count"] == requests


def test_excluded_users_are_counted_apart_from_billable_ones(reporting):
    tenant = reporting.tenant(active_users=40, archived_users=5, service_accounts=3)
    # The sandbox's first three service mailboxes: svc-backup, scanner, svc-sql.
    record = fetch(reporting.adapter(tenant["key"], exclusions=["svc-*@", "scanner@"]))
    assert (record.active_users, record.excluded_users) == (37, 3)
    assert record.raw["excluded_by_pattern"] == {"svc-*@": 2, "scanner@": 1}
    assert (record.usage[0].active_users, record.usage[0].excluded_users) == (37, 3)
    domain = record.domain
    record = fetch(reporting.adapter(tenant["key"], exclusions=[f"*@{domain}"]))
    assert (record.active_users, record.excluded_users) == (0, 40)


def test_requests_are_spaced_within_the_limits_without_a_single_429(reporting):
    tenant = reporting.tenant(active_users=75, name="Spacing")
    adapter = reporting.adapter(tenant["key"], per_page=10)  # 1 + 8 requests
    started = time.monotonic()
    record = fetch(adapter)
    elapsed = time.monotonic() - started
    assert record.active_users == 75
    state = reporting.state(tenant["key"])
    assert (state["request_count"], state["rate_limited"], adapter.throttled) == (9, 0, 0)
    assert elapsed >= 2 * 1.05  # nine requests: four, four more a second later, then one


def test_429s_without_headers_are_backed_off_and_the_import_completes(reporting):
    tenant = reporting.tenant(active_users=35, name="Throttled")
    reporting.sandbox.set_key(tenant["key"], rate_limit_per_second=2)
    adapter = reporting.adapter(tenant["key"], per_page=10)
    record = fetch(adapter)
    assert record.active_users == 35
    state = reporting.state(tenant["key"])
    assert state["rate_limited"] >= 1 and adapter.throttled == state["rate_limited"]


def test_the_daily_cap_fails_at_once_with_a_readable_message(reporting):
    customer = demo_customer(billing_type="PAID", subscription_level="Diamond", max_users=400)
    key = data.reporting_key(customer)
    reporting.sandbox.set_key(key, daily_cap=1)
    adapter = reporting.adapter(key)
    adapter.test()
    started = time.monotonic()
    with pytest.raises(DailyLimitReached) as caught:
        fetch(adapter)
    assert time.monotonic() - started < 1  # not retried
    assert str(caught.value).startswith("Daily limit reached, next attempt after midnight UTC")
    assert isinstance(caught.value, RateLimited)
    tomorrow = datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=1)
    assert caught.value.retry_at == datetime.datetime.combine(
        tomorrow, datetime.time(), datetime.UTC
    )
    assert reporting.state(key)["rate_limited"] == 1


def test_a_429_that_outlasts_every_short_window_is_taken_for_the_daily_cap(
    reporting, settings, monkeypatch
):
    """A daily cap whose answer does not say so: still refused after a whole burst window."""
    monkeypatch.setattr(reporting_module, "BURST_WINDOW_SECONDS", 2)
    settings.TRUEUP_HTTP_MAX_RETRY_WAIT = 3
    tenant = reporting.tenant(active_users=5, name="Capped quietly")
    reporting.sandbox.set_key(tenant["key"], rate_limit_per_minute=1)
    with pytest.raises(DailyLimitReached, match="Daily limit reached"):
        fetch(reporting.adapter(tenant["key"]))


def test_a_short_run_of_429s_is_a_rate_limit_error(reporting, settings):
    settings.TRUEUP_HTTP_MAX_RETRY_WAIT = 1
    tenant = reporting.tenant(active_users=5, name="Busy key")
    reporting.sandbox.set_key(tenant["key"], rate_limit_per_minute=1)
    with pytest.raises(RateLimited, match="kept answering 429") as caught:
        fetch(reporting.adapter(tenant["key"]))
    assert not isinstance(caught.value, DailyLimitReached)


@pytest.mark.parametrize(
    "key, region",
    [
        ("not-a-reporting-key", "us"),
        (
            data.reporting_key(demo_customer(billing_type="PAID", subscription_level="Diamond")),
            "eu",
        ),
        (data.DEMO_PARTNER_KEY, "us"),
    ],
)
def test_a_bad_key_or_the_wrong_site_is_a_credential_error(reporting, key, region):
    with pytest.raises(CredentialRejected, match="rejected the Reporting API key") as caught:
        reporting.adapter(key, region).test()
    assert f"site {region.upper()}" in str(caught.value)


def test_an_account_without_api_access_is_a_credential_error(reporting):
    customer = demo_customer(billing_type="PAID", subscription_level="Gold")
    with pytest.raises(CredentialRejected, match="Platinum or Diamond"):
        reporting.adapter(data.reporting_key(customer)).test()


def test_a_revoked_key_is_a_credential_error(reporting):
    customer = demo_customer(billing_type="PAID", subscription_level="Diamond")
    reporting.sandbox.set_key(data.reporting_key(customer), revoked=True)
    with pytest.raises(CredentialRejected):
        fetch(reporting.adapter(data.reporting_key(customer)))


def test_an_unreachable_site(reporting):
    adapter = ReportingAdapter(base_url="http://127.0.0.1:9", credential="k" * 40)
    with pytest.raises(Unreachable, match="connection was refused"):
        adapter.test()


def test_a_web_page_instead_of_the_api(reporting):
    adapter = ReportingAdapter(
        base_url=f"{reporting.sandbox.base_url}/knowbe4/us", credential="k" * 40
    )
    with pytest.raises(Unreachable, match="web page"):
        adapter.test()


def test_a_server_error_mid_paging_is_a_vendor_fault(reporting):
    tenant = reporting.tenant(active_users=25, name="Flaky pages")
    reporting.sandbox.set_key(tenant["key"], fail_on_requests=[3], fail_status=500)
    with pytest.raises(ServerFault, match="HTTP 500"):
        fetch(reporting.adapter(tenant["key"], per_page=10))


def test_a_passing_503_is_retried(reporting):
    tenant = reporting.tenant(active_users=25, name="Hiccup")
    reporting.sandbox.set_key(tenant["key"], fail_on_requests=[2], fail_status=503)
    assert fetch(reporting.adapter(tenant["key"], per_page=10)).active_users == 25


def test_only_unique_active_users_count(reporting):
    """Records are checked, not only the status filter trusted: archived, null and repeated
    users (a page boundary that moved while paging) never count."""
    adapter = reporting.adapter("unused", per_page=2)
    pages = {
        1: [
            {"id": 1, "email": "a@x.com", "status": "active"},
            {"id": 2, "email": "b@x.com", "status": "archived"},
        ],
        2: [
            {"id": 1, "email": "a@x.com", "status": "active"},
            {"id": 4, "email": "d@x.com", "status": "active"},
            {"id": 3, "email": "c@x.com", "status": "active", "archived_at": "2026-01-01"},
        ],
        3: [None],
    }
    asked = []

    def get(api, path, params=None):
        asked.append(params and params["page"])
        if path == "/v1/account":
            return {"name": "Odd", "type": "paid", "number_of_seats": "12"}
        return pages[params["page"]]

    adapter._get = get
    record = fetch(adapter)
    assert (record.active_users, record.seats) == (2, 12)
    assert asked == [None, 1, 2, 3]


def test_a_page_that_brings_nothing_new_stops_with_an_error(reporting):
    adapter = reporting.adapter("unused", per_page=2)
    same = [{"id": 1, "status": "active"}, {"id": 2, "status": "active"}]
    adapter._get = lambda api, path, params=None: (
        {"name": "Loop"} if path == "/v1/account" else same
    )
    with pytest.raises(BadAnswer, match="paging does not advance"):
        fetch(adapter)


# --- the sandbox's synthetic tenants -------------------------------------------------------


def test_a_synthetic_tenant_is_the_same_for_the_same_specification(reporting):
    first = reporting.tenant(active_users=12, archived_users=3, seats=None, billing_type="TRIAL")
    second = reporting.tenant(active_users=12, archived_users=3, seats=None, billing_type="TRIAL")
    assert first == second
    assert (first["active_users"], first["archived_users"], first["seats"]) == (12, 3, None)
    headers = {"Authorization": f"Bearer {first['key']}"}
    account = httpx.get(f"{first['base_url']}/v1/account", headers=headers).json()
    assert account["type"] == "trial" and "number_of_seats" not in account
    everyone = httpx.get(f"{first['base_url']}/v1/users", headers=headers).json()
    assert len(everyone) == 15
    assert sum(u["status"] == "active" for u in everyone) == 12


@pytest.mark.parametrize(
    "spec, message",
    [
        ({}, "active_users (required)"),
        ({"active_users": -1}, "active_users"),
        ({"active_users": 5, "colour": "red"}, "unknown field"),
        ({"active_users": 5, "region": "mars"}, "region"),
        ({"active_users": 5, "service_accounts": 9}, "service_accounts"),
    ],
)
def test_a_bad_tenant_specification_is_refused(reporting, spec, message):
    response = httpx.post(
        f"{reporting.sandbox.base_url}/_sandbox/knowbe4/reporting-keys", json=spec
    )
    assert response.status_code == 400 and message in response.json()["message"]


def test_the_sandbox_refuses_with_a_bare_429_and_counts_it(reporting):
    tenant = reporting.tenant(active_users=3, name="Bare 429")
    headers = {"Authorization": f"Bearer {tenant['key']}"}
    answers = [httpx.get(f"{tenant['base_url']}/v1/account", headers=headers) for _ in range(6)]
    refused = [a for a in answers if a.status_code == 429]
    assert refused, "4 requests a second"
    assert all("retry-after" not in a.headers for a in refused)
    assert "per second" in refused[0].json()["message"]
    assert reporting.state(tenant["key"])["rate_limited"] == len(refused)


def test_the_daily_cap_answer_names_the_daily_limit(reporting):
    tenant = reporting.tenant(active_users=3, name="Daily")
    reporting.sandbox.set_key(tenant["key"], daily_cap=0)
    headers = {"Authorization": f"Bearer {tenant['key']}"}
    answer = httpx.get(f"{tenant['base_url']}/v1/account", headers=headers)
    assert answer.status_code == 429 and "retry-after" not in answer.headers
    assert "Daily limit" in answer.json()["message"]
