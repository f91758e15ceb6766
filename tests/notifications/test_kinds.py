"""Each notification kind, from the real event through the worker to the e-mail."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.tasks import async_task

from integrations.models import UsageSnapshot, VendorConnection
from reconcile.notifications.models import Kind, Notification
from reconcile.sync.models import SyncRun
from reconcile.tenancy.models import Role
from tests.factories import VendorConnectionFactory
from tests.notifications.conftest import BASE, sent_to

pytestmark = pytest.mark.django_db


def in_app(user, kind):
    return Notification.objects.filter(user=user, kind=kind, in_app=True)


def test_the_first_import_notifies_nobody(connected, team, mailoutbox):
    assert SyncRun.objects.get().state == SyncRun.State.SUCCEEDED
    assert mailoutbox == []
    assert not Notification.objects.exists()


def test_a_failed_sync_emails_the_error_and_the_run_log(
    connected, team, sandbox, sync_now, mailoutbox
):
    sent = sandbox.key_state(sandbox.demo_key)["request_count"]
    sandbox.set_key(sandbox.demo_key, fail_on_requests=[sent + 2, sent + 3, sent + 4, sent + 5])
    sync_now(connected)
    run = SyncRun.objects.first()
    assert run.state == SyncRun.State.FAILED
    connected.refresh_from_db()
    assert not connected.is_quarantined  # one failure: retried by its schedule

    mails = sent_to(mailoutbox, "Sync failed")
    # By default owners, billing and finance are e-mailed; viewers see it in the app only.
    assert set(mails) == {
        team[Role.OWNER].email,
        team[Role.BILLING].email,
        team[Role.FINANCE].email,
    }
    mail = mails[team[Role.OWNER].email]
    assert mail.subject == f"[TrueUp · Acme MSP] Sync failed: {connected}"
    assert f"{BASE}/sync/runs/{run.pk}/" in mail.body
    assert "server error (HTTP 500)" in mail.body
    assert in_app(team[Role.VIEWER], Kind.SYNC_FAILED).get().email_state == "skipped"
    assert set(Notification.objects.values_list("email_state", flat=True)) == {"sent", "skipped"}
    assert connected.credential() not in mail.body


def test_a_rejected_credential_quarantines_and_that_is_one_notice_not_two(
    connected, team, sandbox, sync_now, mailoutbox
):
    sandbox.set_key(sandbox.demo_key, revoked=True)
    sync_now(connected)
    connected.refresh_from_db()
    assert connected.is_quarantined
    run = SyncRun.objects.first()

    assert sent_to(mailoutbox, "Sync failed") == {}
    mails = sent_to(mailoutbox, "Connection quarantined")
    # Billing follows quarantines, finance follows failed syncs: both get this notice.
    assert set(mails) == {
        team[Role.OWNER].email,
        team[Role.BILLING].email,
        team[Role.FINANCE].email,
    }
    mail = mails[team[Role.FINANCE].email]
    assert mail.subject == f"[TrueUp · Acme MSP] Connection quarantined: {connected}"
    assert f"{BASE}{reverse('integrations:detail', args=[connected.pk])}" in mail.body
    assert f"{BASE}/sync/runs/{run.pk}/" in mail.body
    assert "The credential was rejected" in mail.body
    assert len(mailoutbox) == 3


def run_expiry_check(capture):
    with capture(execute=True):
        async_task("reconcile.notifications.tasks.check_credential_expiry")


def test_a_credential_expiring_within_14_days_is_told_once_then_again_when_expired(
    organization, team, mailoutbox, django_capture_on_commit_callbacks
):
    today = timezone.localdate()
    connection = VendorConnectionFactory(
        organization=organization, credential_expires_on=today + timedelta(days=10)
    )
    VendorConnectionFactory(organization=organization, credential_expires_on=today + timedelta(30))
    VendorConnectionFactory(
        organization=organization,
        credential_expires_on=today - timedelta(days=1),
        state=VendorConnection.State.DISABLED,
    )
    run_expiry_check(django_capture_on_commit_callbacks)
    run_expiry_check(django_capture_on_commit_callbacks)  # the daily schedule, next day

    # Owners manage keys: only they are e-mailed by default.
    assert [m.to for m in mailoutbox] == [[team[Role.OWNER].email]]
    mail = mailoutbox[0]
    assert mail.subject == f"[TrueUp · Acme MSP] Credential expires in 10 days: {connection}"
    assert f"{BASE}/integrations/vendor/{connection.pk}/" in mail.body
    assert f"{BASE}/integrations/vendor/{connection.pk}/rotate/" in mail.body
    assert in_app(team[Role.BILLING], Kind.CREDENTIAL_EXPIRING).count() == 1

    VendorConnection.objects.filter(pk=connection.pk).update(
        credential_expires_on=today - timedelta(days=1)
    )
    run_expiry_check(django_capture_on_commit_callbacks)
    run_expiry_check(django_capture_on_commit_callbacks)
    assert len(mailoutbox) == 2
    assert mailoutbox[1].subject == f"[TrueUp · Acme MSP] Credential expired: {connection}"
    assert "expired on" in mailoutbox[1].body


def test_a_rotated_key_with_a_new_date_is_told_about_again(
    organization, owner, mailoutbox, django_capture_on_commit_callbacks
):
    today = timezone.localdate()
    connection = VendorConnectionFactory(organization=organization, credential_expires_on=today)
    run_expiry_check(django_capture_on_commit_callbacks)
    assert mailoutbox[0].subject.endswith(f"Credential expires today: {connection}")
    VendorConnection.objects.filter(pk=connection.pk).update(
        credential_expires_on=today + timedelta(days=1)
    )
    run_expiry_check(django_capture_on_commit_callbacks)
    assert mailoutbox[1].subject.endswith(f"Credential expires in 1 day: {connection}")


# --- the change digest -------------------------------------------------------------------------


def prepare_changes(connection):
    """Change the stored import so that the next sync of the (unchanging) sandbox sees: one
    customer that lost 20 users, one that moved by 1 user (below the threshold), one account
    that is new (and unmapped) and one that is no longer listed."""
    accounts = connection.accounts.filter(active_users__gte=30).order_by("external_id")
    moved, small = accounts[0], accounts[1]
    for account, more in ((moved, 20), (small, 1)):
        account.active_users += more
        account.save()
        UsageSnapshot.objects.filter(account=account).update(active_users=account.active_users)
    gone = connection.accounts.exclude(pk__in=[moved.pk, small.pk]).order_by("name").first()
    original_name = gone.name
    gone.external_id, gone.name = "999999", "Vanished Customer Ltd"
    gone.save()
    return moved, original_name


def test_the_digest_lists_moved_new_and_vanished_customers(connected, team, sync_now, mailoutbox):
    moved, new_name = prepare_changes(connected)
    sync_now(connected)
    run = SyncRun.objects.first()
    assert run.state == SyncRun.State.SUCCEEDED

    mails = sent_to(mailoutbox, "Changes after the sync")
    assert set(mails) == {
        team[Role.OWNER].email,
        team[Role.BILLING].email,
        team[Role.FINANCE].email,
    }
    mail = mails[team[Role.BILLING].email]
    assert mail.subject == (
        f"[TrueUp · Acme MSP] Changes after the sync of {connected}: "
        "1 moved, 1 new unmapped, 1 gone"
    )
    before, now = moved.active_users, moved.active_users - 20
    assert f"- {moved.name}: {before} → {now} (-20)" in mail.body
    assert f"- {new_name}\n" in mail.body
    assert "- Vanished Customer Ltd\n" in mail.body
    assert f"{BASE}/sync/runs/{run.pk}/" in mail.body
    assert f"{BASE}/mapping/accounts/" in mail.body
    assert in_app(team[Role.VIEWER], Kind.DIGEST).get().email_state == "skipped"

    sync_now(connected)  # nothing changed since: no digest
    assert SyncRun.objects.first().state == SyncRun.State.SUCCEEDED
    assert len(sent_to(mailoutbox, "Changes after the sync")) == 3
    assert Notification.objects.filter(kind=Kind.DIGEST).count() == 4


def test_the_threshold_is_the_organizations(connected, organization, owner, sync_now, mailoutbox):
    organization.digest_threshold_percent = 90
    organization.digest_threshold_users = 500
    organization.save()
    prepare_changes(connected)
    sync_now(connected)
    (mail,) = mailoutbox
    assert mail.subject.endswith(": 1 new unmapped, 1 gone")
    assert "moved" not in mail.body
