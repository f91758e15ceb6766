"""Sending by the worker: a mail server that is down, retries with back-off, giving up, claims."""

import smtplib
from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.urls import reverse
from django.utils import timezone
from django_q.tasks import async_task

from reconcile.notifications import services
from reconcile.notifications.models import Kind, Notification
from reconcile.tenancy.models import Membership, Role
from tests.conftest import login
from tests.notifications.conftest import BASE

pytestmark = pytest.mark.django_db

DOWN = "tests.notifications.test_delivery.DownBackend"


class DownBackend(BaseEmailBackend):
    """A mail server that does not answer."""

    def send_messages(self, messages):
        raise ConnectionRefusedError(111, "Connection refused")


class RefusingBackend(BaseEmailBackend):
    """A mail server that refuses one address and takes the others."""

    def send_messages(self, messages):
        for message in messages:
            if "refused" in message.to[0]:
                raise smtplib.SMTPRecipientsRefused({message.to[0]: (550, b"No such user")})
        mail.outbox.extend(messages)
        return len(messages)


def notify(organization, key="event-1", kind=Kind.SYNC_FAILED):
    return services.notify(
        organization.pk,
        kind,
        subject="Sync failed: KnowBe4 Partner API (US) …0000",
        body="The sync failed.\n",
        url="/sync/",
        dedupe_key=key,
    )


def send_pending(capture):
    with capture(execute=True):
        async_task("reconcile.notifications.tasks.send_pending")


def make_due():
    Notification.objects.filter(email_state="pending").update(
        email_next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def test_mail_server_down_keeps_notifications_queued_and_they_go_when_it_is_back(
    organization, team, settings, mailoutbox, client, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = DOWN
    with django_capture_on_commit_callbacks(execute=True):  # the receiver queues the sender
        assert notify(organization) == 4
    pending = Notification.objects.filter(email_state="pending").order_by("id")
    assert pending.count() == 3 and mailoutbox == []
    first = pending.first()
    # The first refused connection ends the round: the others were not even tried.
    assert first.email_attempts == 1 and "Connection refused" in first.email_last_error
    assert first.email_next_attempt_at > timezone.now() + timedelta(minutes=4)
    assert [n.email_attempts for n in pending[1:]] == [0, 0]

    # No page fails meanwhile; the in-app list says the e-mail will be retried.
    login(client, team[Role.OWNER])
    page = client.get(reverse("notifications:index"))
    assert page.status_code == 200
    assert "Sync failed" in page.content.decode()

    send_pending(django_capture_on_commit_callbacks)  # the schedule, five minutes later
    assert Notification.objects.get(pk=first.pk).email_attempts == 1  # backing off
    assert pending.count() == 3

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    make_due()
    send_pending(django_capture_on_commit_callbacks)
    assert not pending.exists()
    assert sorted(m.to[0] for m in mailoutbox) == sorted(
        team[role].email for role in (Role.OWNER, Role.BILLING, Role.FINANCE)
    )
    assert f"{BASE}/sync/" in mailoutbox[0].body
    sent = Notification.objects.get(pk=first.pk)
    assert (sent.email_state, sent.email_attempts, sent.email_last_error) == ("sent", 2, "")

    send_pending(django_capture_on_commit_callbacks)  # nothing is sent twice
    assert len(mailoutbox) == 3


def test_after_the_last_attempt_the_email_is_given_up_and_stays_in_the_app(
    organization, owner, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = DOWN
    settings.TRUEUP_NOTIFICATION_MAX_ATTEMPTS = 3
    with django_capture_on_commit_callbacks(execute=True):
        notify(organization)
    for _ in range(3):
        make_due()
        send_pending(django_capture_on_commit_callbacks)
    notification = Notification.objects.get()
    assert (notification.email_state, notification.email_attempts) == ("failed", 3)
    assert notification.in_app and notification.read_at is None
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    make_due()
    send_pending(django_capture_on_commit_callbacks)
    assert mailoutbox == []


def test_a_refused_address_does_not_hold_up_the_others(
    organization, owner, member_factory, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "tests.notifications.test_delivery.RefusingBackend"
    refused = member_factory(Role.BILLING)
    refused.email = "refused@acme-msp.example"
    refused.save()
    with django_capture_on_commit_callbacks(execute=True):
        notify(organization)
    states = dict(Notification.objects.values_list("user__email", "email_state"))
    assert states == {owner.email: "sent", "refused@acme-msp.example": "pending"}
    assert [m.to for m in mailoutbox] == [[owner.email]]


def test_a_member_who_left_is_not_emailed(
    organization, team, mailoutbox, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = DOWN
    with django_capture_on_commit_callbacks(execute=True):
        notify(organization)
    Membership.objects.filter(user=team[Role.BILLING]).delete()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    make_due()
    send_pending(django_capture_on_commit_callbacks)
    assert {m.to[0] for m in mailoutbox} == {team[Role.OWNER].email, team[Role.FINANCE].email}
    assert (
        Notification.objects.get(user=team[Role.BILLING], email_state="skipped").kind
        == Kind.SYNC_FAILED
    )


def test_a_notification_claimed_by_another_worker_is_left_to_it(
    organization, owner, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = DOWN
    with django_capture_on_commit_callbacks(execute=True):
        notify(organization)
    # Another worker holds it (its lease runs for ten minutes).
    Notification.objects.update(email_next_attempt_at=timezone.now() + timedelta(minutes=10))
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert services.send_pending() == {"sent": 0, "failed": 0}
    assert mailoutbox == []


def test_the_same_event_is_told_once(
    organization, owner, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        notify(organization, key="credential_expiring:1:2030-01-01")
        notify(organization, key="credential_expiring:1:2030-01-01")
    assert Notification.objects.count() == 1
    assert len(mailoutbox) == 1


def test_backoff_grows_and_is_capped():
    assert [services.backoff(n).total_seconds() // 60 for n in (1, 2, 3, 4, 8, 20)] == [
        5,
        10,
        20,
        40,
        240,
        240,
    ]
