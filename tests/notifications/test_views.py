"""The in-app list, the bell, and each member's choices."""

import pytest
from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from reconcile.notifications import services
from reconcile.notifications.models import Kind, Notification, NotificationPreference
from reconcile.sync.models import SyncRun
from reconcile.tenancy.models import AuditEvent, Membership, Role
from tests.conftest import login
from tests.notifications.conftest import sent_to

pytestmark = pytest.mark.django_db


def notify(organization, n=1, kind=Kind.DIGEST):
    for i in range(n):
        services.notify(
            organization.pk,
            kind,
            subject=f"Changes after the sync {i}",
            body="Customer A: 10 → 20 (+10)\n",
            url="/review/",
            dedupe_key=f"digest:{i}",
        )


def test_the_list_shows_unread_first_and_opening_one_marks_it_read(owner_client, organization):
    notify(organization, 3)
    oldest = Notification.objects.order_by("id").first()
    Notification.objects.exclude(pk=oldest.pk).update(read_at="2030-01-01T00:00:00Z")
    page = owner_client.get(reverse("notifications:index")).content.decode()
    assert page.index("Changes after the sync 0") < page.index("Changes after the sync 2")
    assert 'data-testid="unread-count">1<' in page

    response = owner_client.get(reverse("notifications:open", args=[oldest.pk]))
    assert response.status_code == 302 and response.url == "/review/"
    oldest.refresh_from_db()
    assert oldest.read_at is not None


def test_mark_read_over_htmx_answers_the_row_and_the_bell(owner_client, organization):
    notify(organization, 2)
    first = Notification.objects.order_by("id").first()
    response = owner_client.post(
        reverse("notifications:read", args=[first.pk]), HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="notification-{first.pk}"' in html and "Mark read" not in html
    assert 'hx-swap-oob="true"' in html and 'data-testid="unread-count">1<' in html

    response = owner_client.post(reverse("notifications:read_all"), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert 'id="notification-list"' in html and "unread-count" not in html
    assert not Notification.objects.filter(read_at=None).exists()


def test_an_outsider_gets_404_for_another_organizations_notification(
    client, organization, owner, outsider
):
    notify(organization)
    notification = Notification.objects.get()
    login(client, outsider)
    assert client.post(reverse("notifications:read", args=[notification.pk])).status_code == 404
    assert client.get(reverse("notifications:open", args=[notification.pk])).status_code == 404
    client.post(reverse("notifications:read_all"))
    assert Notification.objects.get().read_at is None
    assert "Changes after" not in client.get(reverse("notifications:index")).content.decode()


def test_a_member_cannot_read_a_colleagues_notification(client, organization, team):
    notify(organization)
    owners = Notification.objects.get(user=team[Role.OWNER])
    login(client, team[Role.FINANCE])
    assert client.post(reverse("notifications:read", args=[owners.pk])).status_code == 404


def test_the_bell_costs_one_query_whatever_the_number_of_notifications(owner_client, organization):
    url = reverse("tenancy:settings")
    owner_client.get(url)
    notify(organization, 1)
    with CaptureQueriesContext(db_connection) as one:
        page = owner_client.get(url).content.decode()
    assert 'data-testid="unread-count">1<' in page
    notify(organization, 30)
    with CaptureQueriesContext(db_connection) as many:
        page = owner_client.get(url).content.decode()
    assert 'data-testid="unread-count">30<' in page
    assert len(many) == len(one)
    assert sum("notifications_notification" in q["sql"] for q in many.captured_queries) == 1


def post_preferences(client, **choices):
    """Tick the role's current choices, changed by `choices` ({"email_digest": False})."""
    form = client.get(reverse("notifications:settings")).context["form"]
    data = {name: "on" for name, field in form.fields.items() if form[name].value()}
    for name, value in choices.items():
        data.pop(name, None)
        if value:
            data[name] = "on"
    return client.post(reverse("notifications:settings"), data)


def test_a_member_who_unticked_a_kind_gets_none_of_it(
    connected, team, sandbox, sync_now, mailoutbox
):
    response = post_preferences(login(Client(), team[Role.BILLING]), email_sync_failed=False)
    assert response.status_code == 302
    post_preferences(
        login(Client(), team[Role.FINANCE]), email_sync_failed=False, in_app_sync_failed=False
    )
    event = AuditEvent.objects.get(
        action="notifications.preferences_changed", actor=team[Role.FINANCE]
    )
    assert event.before == {"sync_failed": {"email": True, "in_app": True}}
    assert event.after == {"sync_failed": {"email": False, "in_app": False}}

    sent = sandbox.key_state(sandbox.demo_key)["request_count"]
    sandbox.set_key(sandbox.demo_key, fail_on_requests=[sent + 2])
    sync_now(connected)
    assert SyncRun.objects.first().state == SyncRun.State.FAILED
    assert set(sent_to(mailoutbox, "Sync failed")) == {team[Role.OWNER].email}
    billing = Notification.objects.get(user=team[Role.BILLING])
    assert billing.in_app and billing.email_state == "skipped"
    assert not Notification.objects.filter(user=team[Role.FINANCE]).exists()


def test_a_viewer_changes_only_their_own_choices(client, organization, team):
    viewer = team[Role.VIEWER]
    login(client, viewer)
    page = client.get(reverse("notifications:settings")).content.decode()
    assert "Owners change this" in page and 'data-testid="threshold"' not in page
    post_preferences(client, email_digest=True)
    mine = Membership.objects.get(user=viewer)
    assert set(NotificationPreference.objects.values_list("membership", flat=True)) == {mine.pk}
    assert NotificationPreference.objects.get(kind=Kind.DIGEST).email is True

    response = client.post(
        reverse("notifications:threshold"),
        {"digest_threshold_percent": 50, "digest_threshold_users": 50},
    )
    assert response.status_code == 403
    organization.refresh_from_db()
    assert organization.digest_threshold_percent == 10


def test_owners_set_the_digest_threshold_and_it_is_audited(owner_client, organization):
    url = reverse("notifications:threshold")
    response = owner_client.post(url, {"digest_threshold_percent": 0, "digest_threshold_users": 5})
    assert response.status_code == 422
    assert "greater than or equal to 1" in response.content.decode()
    response = owner_client.post(url, {"digest_threshold_percent": 25, "digest_threshold_users": 5})
    assert response.status_code == 302
    organization.refresh_from_db()
    assert organization.digest_threshold_percent == 25
    event = AuditEvent.objects.get(action="organization.updated")
    assert (event.before, event.after) == (
        {"digest_threshold_percent": 10},
        {"digest_threshold_percent": 25},
    )


def test_the_settings_page_explains_the_defaults(owner_client):
    page = owner_client.get(reverse("notifications:settings")).content.decode()
    assert "Notifications" in page and "Until you choose" in page
    assert "A credential expires within 14 days" in page
    assert 'data-testid="threshold"' in page
