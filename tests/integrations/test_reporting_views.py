"""The KnowBe4 Reporting API connection from the browser: connect, sync, exclusions, faults."""

import httpx
import pytest
from django.urls import reverse

from integrations import services
from integrations.models import UsageSnapshot, UserExclusion, VendorAccount, VendorConnection
from reconcile.core.connections import PollingInterval
from reconcile.sync import services as sync_services
from reconcile.sync.models import SyncRun
from reconcile.tenancy.models import AuditEvent, Role
from sandboxes import data
from tests.conftest import login
from tests.factories import VendorAccountFactory, VendorConnectionFactory

pytestmark = pytest.mark.django_db

REGIONS = ("us", "eu", "ca", "uk", "de")
CONNECT = "integrations:connect_reporting"


def demo_customer(**wanted) -> data.Customer:
    max_users = wanted.pop("max_users", 10**9)
    for customer in data.customers("demo"):
        if customer.active_users <= max_users and all(
            getattr(customer, name) == value for name, value in wanted.items()
        ):
            return customer
    raise LookupError(wanted)


PAID = demo_customer(billing_type="PAID", subscription_level="Diamond", max_users=400)
TRIAL = demo_customer(billing_type="TRIAL", archived=False, max_users=400)


@pytest.fixture
def reporting_urls(sandbox, settings):
    settings.KNOWBE4_REPORTING_URLS = {
        region: f"{sandbox.base_url}/knowbe4-api/{region}" for region in REGIONS
    }
    return settings.KNOWBE4_REPORTING_URLS


def make_tenant(sandbox, **spec) -> dict:
    response = httpx.post(f"{sandbox.base_url}/_sandbox/knowbe4/reporting-keys", json=spec)
    response.raise_for_status()
    return response.json()


def connect(client, key, region="us", capture=None, **extra):
    form = {
        "region": region,
        "api_key": key,
        "account_name": "",
        "description": "",
        "polling_interval": PollingInterval.DAILY,
    } | extra
    if capture is None:
        return client.post(reverse(CONNECT), form)
    with capture(execute=True):
        return client.post(reverse(CONNECT), form)


def sync(connection):
    run = sync_services.queue_sync(connection, trigger=SyncRun.Trigger.MANUAL)
    run = sync_services.run_sync(run.pk)
    connection.refresh_from_db()
    return run


@pytest.fixture
def tenant_connection(sandbox, reporting_urls, organization):
    """A Reporting connection to a 40-user tenant with three service mailboxes, imported."""
    tenant = make_tenant(sandbox, active_users=40, archived_users=4, service_accounts=3)
    connection = VendorConnectionFactory(
        organization=organization,
        kind="knowbe4_reporting",
        settings={"region": "us", "base_url": tenant["base_url"]},
        credential=tenant["key"],
        account_name="Tenant",
    )
    assert sync(connection).state == "succeeded"
    return connection


# --- connect -------------------------------------------------------------------------------


def test_the_connect_page_has_clear_labels(owner_client, reporting_urls):
    page = owner_client.get(reverse(CONNECT)).content.decode()
    for label in ("Site", "API key", "Account name", "Description", "Polling interval"):
        assert f">{label}" in page
    assert "Connect KnowBe4 Reporting API" in page
    assert reporting_urls["eu"] in page  # the site choices show their REST base URLs


def test_the_integrations_page_offers_the_reporting_connector(owner_client):
    page = owner_client.get(reverse("integrations")).content.decode()
    assert reverse(CONNECT) in page and "KnowBe4 Reporting API" in page


def test_a_good_key_is_saved_synced_and_the_account_imported(
    owner_client, owner, reporting_urls, django_capture_on_commit_callbacks
):
    response = connect(
        owner_client,
        data.reporting_key(PAID),
        capture=django_capture_on_commit_callbacks,
        description="Made by Sam",
        polling_interval=PollingInterval.WEEKLY,
    )
    connection = VendorConnection.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("integrations:detail", args=[connection.pk])
    assert connection.kind == "knowbe4_reporting" and connection.region == "us"
    assert connection.base_url == reporting_urls["us"]
    assert connection.account_name == PAID.name  # empty: KnowBe4's name for the account
    assert connection.description == "Made by Sam"
    assert connection.polling_interval == PollingInterval.WEEKLY
    assert connection.credential() == data.reporting_key(PAID)
    assert connection.state == VendorConnection.State.ACTIVE
    run = SyncRun.objects.get()
    assert (run.state, run.trigger, run.added) == ("succeeded", "connect", 1)
    account = VendorAccount.objects.get(connection=connection)
    assert (account.external_id, account.name) == ("account", PAID.name)
    assert (account.seats_purchased, account.active_users, account.excluded_users) == (
        PAID.seats,
        PAID.active_users,
        0,
    )
    assert (account.subscription_level, account.subscription_end_date) == (
        "Diamond",
        PAID.subscription_end,
    )
    snapshot = UsageSnapshot.objects.get(account=account)
    assert (snapshot.service.code, snapshot.active_users, snapshot.excluded_users) == (
        "sat-diamond",
        PAID.active_users,
        0,
    )
    event = AuditEvent.objects.get(action="connection.created")
    assert event.actor == owner and event.after["account_name"] == PAID.name
    assert data.reporting_key(PAID) not in str(event.after)
    detail = owner_client.get(response.url).content.decode()
    assert "KnowBe4 accepted the key" in detail


def test_a_given_account_name_is_kept(owner_client, reporting_urls):
    connect(owner_client, data.reporting_key(PAID), account_name="Kowalski (Main office)")
    assert VendorConnection.objects.get().account_name == "Kowalski (Main office)"


def test_a_trial_account_is_imported_with_seats_unknown(
    owner_client, reporting_urls, django_capture_on_commit_callbacks
):
    connect(owner_client, data.reporting_key(TRIAL), capture=django_capture_on_commit_callbacks)
    account = VendorAccount.objects.get()
    assert account.seats_purchased is None  # unknown, not zero
    assert account.active_users == TRIAL.active_users
    assert account.billing_type == "trial"
    page = owner_client.get(reverse("integrations:accounts", args=[account.connection_id]))
    assert "unknown" in page.content.decode()


@pytest.mark.parametrize(
    "key, region, message",
    [
        ("not-a-reporting-key-at-all", "us", "KnowBe4 rejected the Reporting API key"),
        (data.reporting_key(PAID), "eu", "lives on the site EU"),
        (
            data.reporting_key(demo_customer(billing_type="PAID", subscription_level="Gold")),
            "us",
            "Platinum or Diamond",
        ),
    ],
)
def test_a_rejected_key_saves_nothing(owner_client, reporting_urls, key, region, message):
    response = connect(owner_client, key, region)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not VendorConnection.objects.exists()
    assert not AuditEvent.objects.exists()


def test_an_unreachable_site_saves_nothing(owner_client, reporting_urls, settings):
    settings.KNOWBE4_REPORTING_URLS = reporting_urls | {"de": "http://127.0.0.1:9"}
    response = connect(owner_client, data.reporting_key(PAID), "de")
    assert "Could not reach KnowBe4 at DE (127.0.0.1:9)" in response.content.decode()
    assert not VendorConnection.objects.exists()


def test_bad_form_input_sends_no_request(owner_client, reporting_urls, sandbox):
    key = data.reporting_key(PAID)
    response = connect(owner_client, "abc def", polling_interval=7)
    page = response.content.decode()
    assert "cannot contain spaces" in page and "Select a valid choice" in page
    assert sandbox.key_state(key)["request_count"] == 0


def test_the_same_key_twice_is_refused(owner_client, reporting_urls):
    connect(owner_client, data.reporting_key(PAID))
    response = connect(owner_client, data.reporting_key(PAID))
    assert "This key is already connected" in response.content.decode()
    assert VendorConnection.objects.count() == 1


@pytest.mark.parametrize("role", [Role.BILLING, Role.FINANCE, Role.VIEWER])
def test_only_owners_connect(client, member_factory, reporting_urls, role):
    login(client, member_factory(role))
    assert client.get(reverse(CONNECT)).status_code == 403
    assert connect(client, data.reporting_key(PAID)).status_code == 403
    assert not VendorConnection.objects.exists()


# --- sync faults ---------------------------------------------------------------------------


def test_429s_without_headers_are_backed_off_and_the_run_completes(sandbox, reporting_urls):
    tenant = make_tenant(sandbox, active_users=1_200, name="Throttled tenant")  # 4 requests
    sandbox.set_key(tenant["key"], rate_limit_per_second=1)
    connection = VendorConnectionFactory(
        kind="knowbe4_reporting",
        settings={"base_url": tenant["base_url"]},
        credential=tenant["key"],
    )
    run = sync(connection)
    assert run.state == "succeeded", run.error_message
    assert connection.accounts.get().active_users == 1_200
    assert sandbox.key_state(tenant["key"])["rate_limited"] >= 1


def test_the_daily_cap_fails_the_run_and_keeps_the_old_counts(tenant_connection, sandbox):
    account = tenant_connection.accounts.get()
    before = (account.active_users, account.seats_purchased, account.last_seen_at)
    sandbox.set_key(tenant_connection.credential(), daily_cap=0)
    run = sync(tenant_connection)
    assert run.state == "failed"
    assert run.error_message.startswith("Daily limit reached, next attempt after midnight UTC")
    assert run.error_class == "DailyLimitReached"
    account.refresh_from_db()
    assert (account.active_users, account.seats_purchased, account.last_seen_at) == before
    assert tenant_connection.state == VendorConnection.State.ERROR
    assert "Daily limit reached" in tenant_connection.last_error
    assert not tenant_connection.is_quarantined
    assert sandbox.key_state(tenant_connection.credential())["rate_limited"] == 1  # no retries


def test_daily_caps_never_quarantine_and_move_the_schedule_to_midnight(
    tenant_connection, sandbox, settings
):
    from django_q.models import Schedule

    from reconcile.sync.services import apply_schedule, schedule_name

    settings.TRUEUP_QUARANTINE_AFTER = 2
    tenant_connection.polling_interval = 60
    tenant_connection.save()
    apply_schedule(tenant_connection)
    sandbox.set_key(tenant_connection.credential(), daily_cap=0)
    runs = [sync(tenant_connection) for _ in range(3)]
    tenant_connection.refresh_from_db()
    assert not tenant_connection.is_quarantined and tenant_connection.consecutive_failures == 0
    next_run = Schedule.objects.get(name=schedule_name(tenant_connection)).next_run
    assert (next_run.hour, next_run.minute) == (0, 0) and next_run > runs[-1].finished_at
    assert any("Next scheduled sync moved to" in step["message"] for step in runs[0].log)


def test_a_revoked_key_quarantines_the_connection(tenant_connection, sandbox):
    sandbox.set_key(tenant_connection.credential(), revoked=True)
    assert sync(tenant_connection).state == "failed"
    assert tenant_connection.is_quarantined


# --- exclusions ----------------------------------------------------------------------------


def exclusions_url(account):
    return reverse("integrations:reporting_exclusions", args=[account.pk])


def add_url(account):
    return reverse("integrations:reporting_exclusion_add", args=[account.pk])


def test_exclusions_are_applied_at_the_next_sync(tenant_connection, owner_client, owner):
    account = tenant_connection.accounts.get()
    assert (account.active_users, account.excluded_users) == (40, 0)
    first_point = UsageSnapshot.objects.get(account=account)

    response = owner_client.post(add_url(account), {"pattern": "  SVC-*@ "})
    assert response.status_code == 302
    exclusion = UserExclusion.objects.get()
    assert (exclusion.pattern, exclusion.created_by, exclusion.organization) == (
        "svc-*@",
        owner,
        account.organization,
    )
    event = AuditEvent.objects.get(action="exclusion.added")
    assert event.after["pattern"] == "svc-*@" and event.object_id == str(account.pk)
    page = owner_client.get(exclusions_url(account)).content.decode()
    assert "svc-*@" in page and "from the next sync" in page

    run = sync(tenant_connection)
    assert (run.state, run.updated) == ("succeeded", 1)  # only the excluded count moved
    account.refresh_from_db()
    assert (account.active_users, account.excluded_users) == (38, 2)  # svc-backup, svc-sql
    assert account.raw["excluded_by_pattern"] == {"svc-*@": 2}
    first_point.refresh_from_db()
    assert not first_point.is_current
    current = UsageSnapshot.objects.get(account=account, is_current=True)
    assert (current.active_users, current.excluded_users, current.sync_run_id) == (38, 2, run.pk)

    page = owner_client.get(exclusions_url(account)).content.decode()
    assert 'data-testid="raw-users">40<' in page
    assert 'data-testid="excluded-users">2<' in page
    assert "<strong>38</strong>" in page
    listing = owner_client.get(
        reverse("integrations:accounts", args=[tenant_connection.pk])
    ).content.decode()
    assert 'data-testid="raw-users">40<' in listing and "<strong>38</strong>" in listing

    delete = reverse("integrations:reporting_exclusion_delete", args=[account.pk, exclusion.pk])
    assert owner_client.post(delete).status_code == 302
    assert not UserExclusion.objects.exists()
    assert AuditEvent.objects.get(action="exclusion.removed").before["pattern"] == "svc-*@"
    sync(tenant_connection)
    account.refresh_from_db()
    assert (account.active_users, account.excluded_users) == (40, 0)


def test_the_exclusion_form_works_as_an_htmx_partial(tenant_connection, owner_client):
    account = tenant_connection.accounts.get()
    response = owner_client.post(add_url(account), {"pattern": "scanner@"}, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert response.status_code == 200 and "<html" not in page
    assert 'id="exclusions"' in page and "scanner@" in page and "no longer count" in page


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("", "This field is required."),
        ("svc backup@", "cannot contain spaces"),
        ("svc-*", "needs an @"),
        ("a@b@c", "exactly one @"),
        ("@example.com", "mailbox part before the @"),
        ("*@*", "matches every user"),
        ("svc-[@", "never closed"),
        ("svc,sql@", "cannot appear in an e-mail address"),
        ("x@example..com", "is not a domain"),
    ],
)
def test_an_invalid_pattern_is_a_form_error(tenant_connection, owner_client, pattern, message):
    account = tenant_connection.accounts.get()
    response = owner_client.post(add_url(account), {"pattern": pattern})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not UserExclusion.objects.exists()
    assert not AuditEvent.objects.filter(action="exclusion.added").exists()


def test_a_pattern_already_listed_is_a_form_error(tenant_connection, owner_client, owner):
    account = tenant_connection.accounts.get()
    services.add_exclusion(account, owner, "svc-*@")
    response = owner_client.post(add_url(account), {"pattern": "SVC-*@"})
    assert "svc-*@ is already in the list." in response.content.decode()
    assert UserExclusion.objects.count() == 1


@pytest.mark.parametrize("role", [Role.BILLING, Role.FINANCE, Role.VIEWER])
def test_members_read_exclusions_and_only_owners_change_them(
    tenant_connection, client, member_factory, owner, role
):
    account = tenant_connection.accounts.get()
    exclusion = services.add_exclusion(account, owner, "svc-*@")
    login(client, member_factory(role))
    page = client.get(exclusions_url(account))
    assert page.status_code == 200 and "svc-*@" in page.content.decode()
    assert "Add exclusion" not in page.content.decode()
    assert client.post(add_url(account), {"pattern": "scanner@"}).status_code == 403
    delete = reverse("integrations:reporting_exclusion_delete", args=[account.pk, exclusion.pk])
    assert client.post(delete).status_code == 403
    assert list(UserExclusion.objects.values_list("pattern", flat=True)) == ["svc-*@"]


def test_an_outsider_gets_404_on_every_exclusion_page(tenant_connection, client, outsider, owner):
    account = tenant_connection.accounts.get()
    exclusion = services.add_exclusion(account, owner, "svc-*@")
    login(client, outsider)
    assert client.get(exclusions_url(account)).status_code == 404
    assert client.post(add_url(account), {"pattern": "scanner@"}).status_code == 404
    delete = reverse("integrations:reporting_exclusion_delete", args=[account.pk, exclusion.pk])
    assert client.post(delete).status_code == 404
    assert UserExclusion.objects.count() == 1


def test_partner_accounts_have_no_exclusion_page(owner_client, organization):
    account = VendorAccountFactory(connection__organization=organization)
    assert owner_client.get(exclusions_url(account)).status_code == 404
    assert owner_client.post(add_url(account), {"pattern": "svc-*@"}).status_code == 404
