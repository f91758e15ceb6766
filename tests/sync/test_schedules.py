from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from reconcile.sync import services, tasks
from reconcile.sync.models import SyncRun
from reconcile.tenancy.models import AuditEvent, Role
from tests.conftest import login
from tests.factories import PSAConnectionFactory, SyncRunFactory, VendorConnectionFactory

pytestmark = pytest.mark.django_db


def test_a_new_connection_is_scheduled_daily_and_unscheduled_when_deleted():
    connection = VendorConnectionFactory()
    schedule = Schedule.objects.get(name=f"sync-vendor-{connection.pk}")
    assert (schedule.func, schedule.minutes, schedule.repeats) == (
        "reconcile.sync.tasks.scheduled_sync",
        1440,
        -1,
    )
    assert schedule.args == f"('vendor', {connection.pk})"
    connection.delete()
    assert not Schedule.objects.filter(name__startswith="sync-").exists()


def test_the_scheduled_task_queues_a_run():
    connection = PSAConnectionFactory()
    assert tasks.scheduled_sync("psa", connection.pk) == "queued"
    assert SyncRun.objects.get(psa_connection=connection).trigger == SyncRun.Trigger.SCHEDULE
    assert tasks.scheduled_sync("psa", 0) == "skipped"


def test_owners_change_the_interval_and_it_is_audited(owner_client, organization):
    connection = VendorConnectionFactory(organization=organization)
    url = reverse("sync:schedule", args=["vendor", connection.pk])
    owner_client.post(url, {"polling_interval": "60", "min_manual_interval": "30"})
    connection.refresh_from_db()
    assert (connection.polling_interval, connection.min_manual_interval) == (60, 30)
    assert Schedule.objects.get(name=f"sync-vendor-{connection.pk}").minutes == 60
    owner_client.post(url, {"polling_interval": "0"})
    assert not Schedule.objects.filter(name=f"sync-vendor-{connection.pk}").exists()
    event = AuditEvent.objects.filter(action="sync.schedule_changed").order_by("id").last()
    assert event.before["polling_interval"] == 60 and event.after["polling_interval"] == 0
    response = owner_client.post(url, {"polling_interval": "7"}, follow=True)
    assert "Choose one of the listed intervals" in response.content.decode()


def test_only_owners_change_schedules(client, member_factory, organization):
    connection = VendorConnectionFactory(organization=organization)
    login(client, member_factory(Role.BILLING))
    response = client.post(
        reverse("sync:schedule", args=["vendor", connection.pk]), {"polling_interval": "60"}
    )
    assert response.status_code == 403
    connection.refresh_from_db()
    assert connection.polling_interval == 1440


def test_sync_now_twice_within_the_minimum_is_refused_with_the_time(owner_client, organization):
    connection = VendorConnectionFactory(organization=organization)
    run = SyncRunFactory(
        vendor_connection=connection,
        state=SyncRun.State.SUCCEEDED,
        queued_at=timezone.now() - timedelta(minutes=5),
    )
    possible = timezone.localtime(run.queued_at + timedelta(minutes=15))
    response = owner_client.post(
        reverse("sync:sync_now", args=["vendor", connection.pk]), HTTP_HX_REQUEST="true"
    )
    assert f"next manual sync possible at {possible:%H:%M}" in response.content.decode()
    assert SyncRun.objects.count() == 1
    run.queued_at = timezone.now() - timedelta(minutes=16)
    run.save()
    owner_client.post(reverse("sync:sync_now", args=["vendor", connection.pk]))
    assert SyncRun.objects.count() == 2


def test_status_page_lists_every_connection_and_sync_all_starts_them(owner_client, organization):
    vendor = VendorConnectionFactory(organization=organization, description="KB4 main")
    psa = PSAConnectionFactory(organization=organization, description="Our ConnectWise")
    SyncRunFactory(vendor_connection=vendor, state=SyncRun.State.SUCCEEDED)  # just now
    page = owner_client.get(reverse("sync:status")).content.decode()
    assert "KB4 main" in page and "Our ConnectWise" in page and "next run" in page
    response = owner_client.post(reverse("sync:sync_all"), follow=True)
    assert "1 sync started." in response.content.decode()
    assert "next manual sync possible at" in response.content.decode()
    assert SyncRun.objects.filter(psa_connection=psa, trigger="manual").count() == 1
    assert services.manual_sync_refusal(psa)
