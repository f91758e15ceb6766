"""Connecting KnowBe4 from the browser: authenticate, import in the worker, faults, key changes."""

import pytest
from django.db import connection as db_connection
from django.urls import reverse

from integrations.models import (
    StagedAccount,
    StagedUsage,
    UsageSnapshot,
    VendorAccount,
    VendorConnection,
    VendorService,
)
from reconcile.sync.models import SyncRun
from reconcile.tenancy.models import AuditEvent, Role
from sandboxes.data import partner_by_slug
from tests.conftest import login
from tests.factories import VendorConnectionFactory

pytestmark = pytest.mark.django_db


def connect(client, key, region="us", capture=None, **extra):
    data = {"api_key": key, "region": region, "description": "", "expires_on": ""} | extra
    if capture is None:
        return client.post(reverse("integrations:connect_knowbe4"), data)
    with capture(execute=True):
        return client.post(reverse("integrations:connect_knowbe4"), data)


def test_connecting_saves_a_pending_connection_and_queues_the_import(owner_client, sandbox):
    response = connect(owner_client, sandbox.demo_key)
    connection = VendorConnection.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("integrations:detail", args=[connection.pk])
    assert connection.state == VendorConnection.State.PENDING
    assert connection.secret_hint == sandbox.demo_key[-4:]
    assert SyncRun.objects.get().state == SyncRun.State.QUEUED
    page = owner_client.get(response.url).content.decode()
    assert "Pending" in page and "Import queued" in page and "↻ Refresh" in page


def test_the_worker_imports_every_account_and_the_connection_becomes_active(
    owner_client, sandbox, django_capture_on_commit_callbacks
):
    connect(owner_client, sandbox.demo_key, capture=django_capture_on_commit_callbacks)
    connection = VendorConnection.objects.get()
    assert connection.state == VendorConnection.State.ACTIVE
    assert connection.api_schema == "2023"
    assert VendorAccount.objects.filter(connection=connection).count() == 160
    run = SyncRun.objects.get()
    assert (run.state, run.added, run.progress_done, run.progress_total) == ("succeeded", 160, 2, 2)
    assert VendorService.objects.filter(connection=connection).exists()
    assert UsageSnapshot.objects.filter(sync_run_id=run.pk).count() >= 160
    status = owner_client.get(
        reverse("sync:connection_status", args=["vendor", connection.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Active" in status and '<strong data-testid="item-count">160</strong>' in status


def test_the_current_schema_generation_is_detected_and_recorded(
    owner_client, sandbox, django_capture_on_commit_callbacks
):
    sandbox.set_key(sandbox.demo_key, schema="current")
    connect(owner_client, sandbox.demo_key, capture=django_capture_on_commit_callbacks)
    connection = VendorConnection.objects.get()
    assert connection.api_schema == "current"
    assert connection.accounts.count() == 160


@pytest.mark.parametrize(
    "slug, region, message",
    [
        ("revoked", "us", "KnowBe4 rejected the API key"),
        ("demo", "eu", "KnowBe4 rejected the API key"),
    ],
)
def test_a_rejected_key_saves_nothing(owner_client, sandbox, slug, region, message):
    response = connect(owner_client, partner_by_slug(slug).key, region)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not VendorConnection.objects.exists()
    assert not AuditEvent.objects.filter(action="connection.created").exists()


def test_a_region_that_does_not_answer_saves_nothing(owner_client, sandbox, settings):
    settings.KNOWBE4_GRAPHQL_URLS = settings.KNOWBE4_GRAPHQL_URLS | {
        "de": "http://127.0.0.1:9/graphql"
    }
    response = connect(owner_client, sandbox.demo_key, "de")
    assert "Could not reach KnowBe4 at DE (127.0.0.1:9)" in response.content.decode()
    assert not VendorConnection.objects.exists()


def test_a_region_that_answers_html_saves_nothing(owner_client, sandbox, settings):
    settings.KNOWBE4_GRAPHQL_URLS = settings.KNOWBE4_GRAPHQL_URLS | {
        "uk": f"{sandbox.base_url}/knowbe4/uk/"
    }
    response = connect(owner_client, sandbox.demo_key, "uk")
    assert "Could not reach KnowBe4 at UK" in response.content.decode()
    assert not VendorConnection.objects.exists()


@pytest.mark.parametrize(
    "key, message",
    [
        ("", "This field is required."),
        ("   ", "This field is required."),
        ("abc def", "cannot contain spaces"),
        ("k" * 10_240, "is at most 2,048"),
        ("kéy-with-accent", "characters a KnowBe4 key never has"),
    ],
)
def test_bad_keys_get_a_validation_message_and_no_request(owner_client, sandbox, key, message):
    before = sandbox.key_state(sandbox.demo_key)["request_count"]
    response = connect(owner_client, key)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not VendorConnection.objects.exists()
    assert sandbox.key_state(sandbox.demo_key)["request_count"] == before


def test_leading_and_trailing_whitespace_of_a_pasted_key_is_ignored(owner_client, sandbox):
    connect(owner_client, f"  {sandbox.demo_key}\n")
    assert VendorConnection.objects.get().credential() == sandbox.demo_key


@pytest.mark.parametrize("role", [Role.BILLING, Role.FINANCE, Role.VIEWER])
def test_only_owners_see_and_post_the_connect_form(client, member_factory, sandbox, role):
    login(client, member_factory(role))
    assert client.get(reverse("integrations:connect_knowbe4")).status_code == 403
    assert connect(client, sandbox.demo_key).status_code == 403
    assert not VendorConnection.objects.exists()
    assert client.get(reverse("integrations")).status_code == 200


def test_a_500_on_a_later_page_keeps_the_last_good_import_and_retry_works(
    owner_client, sandbox, settings, django_capture_on_commit_callbacks
):
    settings.KNOWBE4_PAGE_SIZE = 25
    connect(owner_client, sandbox.demo_key, capture=django_capture_on_commit_callbacks)
    connection = VendorConnection.objects.get()
    good = dict(connection.accounts.values_list("external_id", "active_users"))
    snapshots = UsageSnapshot.objects.count()
    assert len(good) == 160

    VendorConnection.objects.update(min_manual_interval=0)  # retry at once
    sent = sandbox.key_state(sandbox.demo_key)["request_count"]
    # introspection, page 1, then one of the pages asked for at once answers 500
    sandbox.set_key(sandbox.demo_key, fail_on_requests=[sent + 4])
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("sync:sync_now", args=["vendor", connection.pk]))
    connection.refresh_from_db()
    failed = SyncRun.objects.first()
    assert (failed.state, failed.error_class) == ("failed", "ServerFault")
    assert 1 <= failed.progress_done < 7  # not every one of the 7 pages arrived
    assert connection.state == VendorConnection.State.ERROR
    assert "server error (HTTP 500)" in connection.last_error
    assert dict(connection.accounts.values_list("external_id", "active_users")) == good
    assert UsageSnapshot.objects.count() == snapshots
    assert not StagedAccount.objects.exists() and not StagedUsage.objects.exists()
    page = owner_client.get(reverse("integrations:detail", args=[connection.pk])).content.decode()
    assert "The last import failed" in page and "Retry import" in page
    assert "160 customer accounts of the last good import are kept" in page

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("sync:sync_now", args=["vendor", connection.pk]))
    connection.refresh_from_db()
    assert connection.state == VendorConnection.State.ACTIVE and connection.last_error == ""
    retried = SyncRun.objects.first()
    assert (retried.state, retried.unchanged, retried.added) == ("succeeded", 160, 0)
    assert UsageSnapshot.objects.count() == snapshots  # counts did not move: no new points
    assert not StagedAccount.objects.exists()


def test_the_key_is_encrypted_at_rest_and_never_rendered_or_audited(owner_client, sandbox):
    key = sandbox.demo_key
    connect(owner_client, key)
    connection = VendorConnection.objects.get()
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT secrets_encrypted FROM integrations_vendorconnection")
        (stored,) = cursor.fetchone()
    assert key not in stored and key[-12:] not in stored
    assert connection.credential() == key
    for url in [
        reverse("integrations"),
        reverse("integrations:detail", args=[connection.pk]),
        reverse("integrations:rotate", args=[connection.pk]),
        reverse("tenancy:activity"),
    ]:
        assert key not in owner_client.get(url).content.decode()
    for event in AuditEvent.objects.all():
        assert key not in str(event.before) + str(event.after)


def test_rotating_the_key_checks_the_new_one_first(owner_client, sandbox):
    connect(owner_client, sandbox.demo_key)
    connection = VendorConnection.objects.get()
    url = reverse("integrations:rotate", args=[connection.pk])
    response = owner_client.post(url, {"api_key": partner_by_slug("revoked").key})
    assert "rejected the API key" in response.content.decode()
    connection.refresh_from_db()
    assert connection.credential() == sandbox.demo_key

    new_key = sandbox.demo_key  # the sandbox's demo partner has one key; rotate to it again
    response = owner_client.post(url, {"api_key": new_key, "expires_on": "2031-01-31"})
    assert response.status_code == 302
    connection.refresh_from_db()
    assert str(connection.credential_expires_on) == "2031-01-31"
    event = AuditEvent.objects.get(action="connection.credentials_rotated")
    assert event.after == {"secret_last4": new_key[-4:], "expires_on": "2031-01-31"}


def test_disconnect_asks_for_confirmation_and_removes_imported_data(
    owner_client, sandbox, django_capture_on_commit_callbacks
):
    connect(owner_client, sandbox.demo_key, capture=django_capture_on_commit_callbacks)
    connection = VendorConnection.objects.get()
    url = reverse("integrations:disconnect", args=[connection.pk])
    assert "160" in owner_client.get(url).content.decode()
    assert owner_client.post(url, {}).status_code == 200  # not confirmed
    wrong = owner_client.post(url, {"name": "something else"})
    assert "not the connection&#x27;s name" in wrong.content.decode()
    assert VendorConnection.objects.exists()
    response = owner_client.post(url, {"name": connection.confirm_name})
    assert response.status_code == 302
    for model in (VendorConnection, VendorAccount, VendorService, UsageSnapshot, SyncRun):
        assert not model.objects.exists(), model
    event = AuditEvent.objects.get(action="connection.disconnected")
    assert event.before["accounts"] == 160 and event.before["secret_last4"] == sandbox.demo_key[-4:]


def test_accounts_list_is_searchable_and_paginated(
    owner_client, sandbox, django_capture_on_commit_callbacks
):
    connect(owner_client, sandbox.demo_key, capture=django_capture_on_commit_callbacks)
    connection = VendorConnection.objects.get()
    url = reverse("integrations:accounts", args=[connection.pk])
    first = owner_client.get(url)
    assert len(first.context["page"].object_list) == 50
    assert "Page 1 of 4 · 160 in all" in first.content.decode()
    name = connection.accounts.order_by("name")[7].name
    found = owner_client.get(
        url, {"q": name[:12]}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="account-results"
    )
    assert name in found.content.decode() and "<html" not in found.content.decode()
    archived = owner_client.get(url, {"status": "archived"}).context["page"].paginator.count
    assert archived == connection.accounts.filter(status="archived").count() > 0


def test_several_knowbe4_connections_per_organization(owner_client, sandbox):
    connect(owner_client, sandbox.demo_key)
    connect(owner_client, partner_by_slug("northwind").key, "eu", description="Northwind EU")
    assert VendorConnection.objects.count() == 2
    assert "Northwind EU" in owner_client.get(reverse("integrations")).content.decode()


def test_a_second_import_records_changes_and_vanished_accounts(
    owner_client, sandbox, django_capture_on_commit_callbacks
):
    connect(owner_client, sandbox.demo_key, capture=django_capture_on_commit_callbacks)
    connection = VendorConnection.objects.get()
    gone = connection.accounts.order_by("external_id").first()
    gone.external_id = "999999"  # an account KnowBe4 no longer lists
    gone.save()
    moved = connection.accounts.exclude(pk=gone.pk).order_by("external_id").first()
    moved.active_users = (moved.active_users or 0) + 7  # KnowBe4 will report the old count
    moved.save()
    snapshots = UsageSnapshot.objects.filter(account=moved).count()
    VendorConnection.objects.update(min_manual_interval=0)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("sync:sync_now", args=["vendor", connection.pk]))
    run = SyncRun.objects.first()
    assert (run.added, run.updated, run.unchanged, run.removed) == (1, 1, 158, 1)
    gone.refresh_from_db()
    assert gone.missing_since is not None
    assert connection.accounts.filter(missing_since=None).count() == 160
    # one new change point per service of the account whose count moved, none for the rest
    assert UsageSnapshot.objects.filter(account=moved).count() == 2 * snapshots
    # the new points are current, the ones they supersede are history
    assert UsageSnapshot.objects.filter(account=moved, is_current=True).count() == snapshots
    assert set(
        UsageSnapshot.objects.filter(account=moved, is_current=True).values_list(
            "sync_run_id", flat=True
        )
    ) == {run.pk}
    readded = connection.accounts.get(external_id=gone.raw["id"].__str__())
    assert set(
        UsageSnapshot.objects.filter(sync_run_id=run.pk).values_list("account", flat=True)
    ) == {
        moved.pk,
        readded.pk,
    }


def test_an_upgrade_with_the_same_user_count_records_the_new_service(
    owner_client, sandbox, django_capture_on_commit_callbacks
):
    connect(owner_client, sandbox.demo_key, capture=django_capture_on_commit_callbacks)
    connection = VendorConnection.objects.get()
    account = connection.accounts.filter(subscription_level="Gold").order_by("id").first()
    # As if the last import had seen it on Silver: this import sees Gold, same counts.
    account.subscription_level = "Silver"
    account.raw = account.raw | {"subscriptionObject": {"subscriptionLevel": "Silver"}}
    account.save()
    VendorConnection.objects.update(min_manual_interval=0)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("sync:sync_now", args=["vendor", connection.pk]))
    run = SyncRun.objects.first()
    assert run.updated == 1
    latest = UsageSnapshot.objects.filter(account=account, sync_run_id=run.pk)
    assert [s.service.code for s in latest] == ["sat-gold"]
    assert latest.get().active_users == account.active_users


def test_the_connection_page_says_how_many_requests_go_at_once(owner_client, organization):
    partner = VendorConnectionFactory(organization=organization)
    page = owner_client.get(reverse("integrations:detail", args=[partner.pk])).content.decode()
    assert "4 at once; not limited" in page
    reporting = VendorConnectionFactory(organization=organization, kind="knowbe4_reporting")
    page = owner_client.get(reverse("integrations:detail", args=[reporting.pk])).content.decode()
    assert "1 at once; 4 a second and 50 a minute" in page
