import pytest
from django.urls import reverse

from integrations.models import VendorConnection
from reconcile.tenancy.models import Role

BASE = "http://127.0.0.1:8000"


@pytest.fixture(autouse=True)
def notification_settings(settings):
    settings.TRUEUP_BASE_URL = BASE
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def team(owner, member_factory):
    """An owner and one member of every other role, by role."""
    return {
        Role.OWNER: owner,
        **{role: member_factory(role) for role in (Role.BILLING, Role.FINANCE, Role.VIEWER)},
    }


@pytest.fixture
def connected(owner_client, sandbox, django_capture_on_commit_callbacks):
    """The demo KnowBe4 key connected and imported by the worker (tasks run inline)."""
    data = {"api_key": sandbox.demo_key, "region": "us", "description": "", "expires_on": ""}
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("integrations:connect_knowbe4"), data)
    connection = VendorConnection.objects.get()
    assert connection.state == VendorConnection.State.ACTIVE
    VendorConnection.objects.filter(pk=connection.pk).update(min_manual_interval=0)
    return connection


@pytest.fixture
def sync_now(owner_client, django_capture_on_commit_callbacks):
    """Press "Sync now" and let the worker run it and everything it queues."""

    def run(connection):
        with django_capture_on_commit_callbacks(execute=True):
            owner_client.post(reverse("sync:sync_now", args=["vendor", connection.pk]))

    return run


def sent_to(outbox, subject_part: str) -> dict:
    """{recipient: message} of the e-mails whose subject contains `subject_part`."""
    return {
        address: message
        for message in outbox
        if subject_part in message.subject
        for address in message.to
    }
