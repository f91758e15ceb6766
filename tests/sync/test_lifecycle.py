"""Quarantine, Test connection, deactivate/activate and delete, against the KnowBe4 sandbox."""

import pytest
from django.urls import reverse
from django_q.models import Schedule

from integrations.models import (
    UsageSnapshot,
    VendorAccount,
    VendorConnection,
    VendorService,
)
from reconcile.mapping import services as mapping
from reconcile.mapping.models import AccountMapping, RejectedSuggestion, ServiceMapping
from reconcile.sync import services
from reconcile.sync import services as lifecycle
from reconcile.sync.models import SyncRun
from reconcile.tenancy.models import AuditEvent, Role
from tests.conftest import login
from tests.factories import PSACompanyFactory, PSAProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def kb4(sandbox, organization, owner):
    connection = lifecycle.connect(
        VendorConnection,
        organization,
        owner,
        kind="knowbe4_partner",
        settings={"region": "us", "base_url": sandbox.graphql_url("us"), "api_schema": "2023"},
        secrets={"api_key": sandbox.demo_key},
    )
    assert sync(connection).state == "succeeded"
    connection.refresh_from_db()
    return connection


def sync(connection, trigger="manual"):
    run = services.queue_sync(connection, trigger=trigger)
    return services.run_sync(run.pk)


def schedule_exists(connection):
    return Schedule.objects.filter(name=services.schedule_name(connection)).exists()


def test_a_rejected_key_quarantines_at_once_and_resume_needs_a_passing_test(
    kb4, sandbox, owner, client
):
    accounts = kb4.accounts.count()
    assert schedule_exists(kb4)
    sandbox.set_key(sandbox.demo_key, revoked=True)
    run = sync(kb4)
    kb4.refresh_from_db()
    assert run.state == "failed" and kb4.is_quarantined
    assert "rejected" in kb4.quarantine_reason
    assert not schedule_exists(kb4)
    assert kb4.accounts.count() == accounts  # the last good import stays
    assert "quarantined" in services.manual_sync_refusal(kb4)

    login(client, owner)
    page = client.get(reverse("home")).content.decode()
    assert 'data-testid="quarantine-banner"' in page and str(kb4) in page
    resume = reverse("sync:resume", args=["vendor", kb4.pk])
    client.post(resume)
    kb4.refresh_from_db()
    assert kb4.is_quarantined  # the key is still revoked: the test fails, nothing changes

    sandbox.set_key(sandbox.demo_key, revoked=False)
    response = client.post(resume, follow=True)
    assert "resumed" in response.content.decode()
    kb4.refresh_from_db()
    assert not kb4.is_quarantined and kb4.consecutive_failures == 0
    assert schedule_exists(kb4)
    assert AuditEvent.objects.filter(action="connection.resumed").count() == 1
    assert sync(kb4).state == "succeeded"


def test_repeated_failures_quarantine_after_the_configured_count(kb4, sandbox, settings):
    settings.TRUEUP_QUARANTINE_AFTER = 3
    sandbox.set_key(sandbox.demo_key, fail_on_requests=list(range(1, 200)), fail_status=400)
    for expected in (1, 2):
        assert sync(kb4).state == "failed"
        kb4.refresh_from_db()
        assert (kb4.consecutive_failures, kb4.is_quarantined) == (expected, False)
    sync(kb4)
    kb4.refresh_from_db()
    assert kb4.is_quarantined and "3 syncs failed in a row" in kb4.quarantine_reason


def test_a_success_resets_the_failure_count(kb4, sandbox, settings):
    settings.TRUEUP_QUARANTINE_AFTER = 3
    sandbox.set_key(sandbox.demo_key, fail_on_requests=list(range(1, 200)), fail_status=400)
    sync(kb4)
    sync(kb4)
    sandbox.set_key(sandbox.demo_key, fail_on_requests=[])
    assert sync(kb4).state == "succeeded"
    kb4.refresh_from_db()
    assert kb4.consecutive_failures == 0 and not kb4.is_quarantined


def test_test_connection_answers_in_plain_words(kb4, sandbox, owner, member_factory, client):
    url = reverse("sync:test", args=["vendor", kb4.pk])
    login(client, owner)
    response = client.post(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    text = response.content.decode()
    assert "OK:" in text and " ms)" in text
    sandbox.set_key(sandbox.demo_key, revoked=True)
    response = client.post(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 422 and "rejected" in response.content.decode()
    login(client, member_factory(Role.VIEWER))
    assert client.post(url).status_code == 403


def test_an_outsider_cannot_test_deactivate_or_resume(kb4, outsider, client):
    login(client, outsider)
    for name in ("test", "deactivate", "activate", "resume", "sync_now"):
        assert client.post(reverse(f"sync:{name}", args=["vendor", kb4.pk])).status_code == 404
    kb4.refresh_from_db()
    assert kb4.state == "active"


def test_deactivate_keeps_the_data_and_activate_tests_first(kb4, sandbox, owner, client):
    accounts = kb4.accounts.count()
    login(client, owner)
    client.post(reverse("sync:deactivate", args=["vendor", kb4.pk]))
    kb4.refresh_from_db()
    assert kb4.state == "disabled" and not schedule_exists(kb4)
    assert kb4.accounts.count() == accounts
    assert "deactivated" in services.manual_sync_refusal(kb4)
    page = client.get(reverse("integrations:detail", args=[kb4.pk])).content.decode()
    assert 'data-testid="deactivated"' in page
    sandbox.set_key(sandbox.demo_key, revoked=True)
    client.post(reverse("sync:activate", args=["vendor", kb4.pk]))
    kb4.refresh_from_db()
    assert kb4.state == "disabled"
    sandbox.set_key(sandbox.demo_key, revoked=False)
    client.post(reverse("sync:activate", args=["vendor", kb4.pk]))
    kb4.refresh_from_db()
    assert kb4.state == "active" and schedule_exists(kb4)
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"connection.deactivated", "connection.activated"} <= actions


def test_delete_leaves_no_row_of_the_connection(
    kb4, organization, owner, client, django_capture_on_commit_callbacks
):
    company = PSACompanyFactory(connection__organization=organization, name="Kept Co")
    product = PSAProductFactory(connection=company.connection)
    account = kb4.accounts.first()
    mapping.map_account(account, company, owner)
    mapping.map_service(kb4.services.first(), product, owner)
    RejectedSuggestion.objects.create(
        organization=organization, vendor_account=kb4.accounts.last(), psa_company=company
    )
    tables = {
        VendorAccount: {"connection": kb4},
        VendorService: {"connection": kb4},
        UsageSnapshot: {"account__connection": kb4},
        AccountMapping: {"vendor_account__connection": kb4},
        ServiceMapping: {"vendor_service__connection": kb4},
        RejectedSuggestion: {"vendor_account__connection": kb4},
        SyncRun: {"vendor_connection": kb4},
    }
    assert all(model.objects.filter(**lookup).exists() for model, lookup in tables.items())
    login(client, owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("integrations:disconnect", args=[kb4.pk]), {"name": kb4.confirm_name}
        )
    assert response.status_code == 302
    assert not VendorConnection.objects.filter(pk=kb4.pk).exists()
    for model in tables:
        assert not model.objects.exists(), model
    assert not schedule_exists(kb4)
    assert AuditEvent.objects.filter(action="connection.disconnected").exists()
    company.refresh_from_db()  # the PSA side is untouched
