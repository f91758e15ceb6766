from datetime import timedelta

import pytest
from django.utils import timezone

from reconcile.core.signals import request_sync
from reconcile.sync import services
from reconcile.sync.models import SyncRun
from tests.factories import SyncRunFactory, VendorConnectionFactory

pytestmark = pytest.mark.django_db


def test_only_one_run_is_queued_per_connection():
    connection = VendorConnectionFactory()
    first = request_sync(connection, trigger="manual")
    second = request_sync(connection, trigger="manual")
    assert first.pk == second.pk
    assert SyncRun.objects.filter(vendor_connection=connection).count() == 1


def test_a_run_is_claimed_once():
    run = SyncRunFactory()
    assert services.claim(run.pk).state == SyncRun.State.RUNNING
    assert services.claim(run.pk) is None


def test_a_run_that_stopped_reporting_becomes_unknown_and_a_new_one_can_start(settings):
    settings.TRUEUP_SYNC_STALE_AFTER = 60
    stale = SyncRunFactory(
        state=SyncRun.State.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    fresh = request_sync(stale.vendor_connection, trigger="manual")
    stale.refresh_from_db()
    assert stale.state == SyncRun.State.UNKNOWN
    assert "stopped reporting" in stale.error_message
    assert fresh.pk != stale.pk and fresh.state == SyncRun.State.QUEUED


def test_a_running_run_that_still_reports_is_left_alone(settings):
    settings.TRUEUP_SYNC_STALE_AFTER = 60
    running = SyncRunFactory(state=SyncRun.State.RUNNING, heartbeat_at=timezone.now())
    assert request_sync(running.vendor_connection, trigger="manual").pk == running.pk


def test_an_unexpected_crash_fails_the_run_with_a_readable_message(monkeypatch):
    run = SyncRunFactory()

    def explode(connection):
        raise KeyError("boom")

    monkeypatch.setattr("integrations.models.VendorConnection.adapter", explode)
    services.run_sync(run.pk)
    run.refresh_from_db()
    run.vendor_connection.refresh_from_db()
    assert run.state == SyncRun.State.FAILED and run.error_class == "KeyError"
    assert "Unexpected error (KeyError)" in run.vendor_connection.last_error
    assert run.log[-1]["level"] == "error"


def test_a_failure_that_left_garbage_on_the_run_still_records_the_failure(monkeypatch):
    """Whatever an import left half-set on the run object, the failure is what gets saved."""
    run = SyncRunFactory()

    def broken(run_, connection):
        run_.progress_done = {"x": 2}  # what a wrong-typed page number once produced
        raise KeyError("boom")

    monkeypatch.setattr(services, "_import", broken)
    services.run_sync(run.pk)
    run.refresh_from_db()
    assert run.state == SyncRun.State.FAILED and run.error_class == "KeyError"
    assert run.progress_done == 0


def test_time_left_is_the_pace_of_the_pages_so_far():
    started = timezone.now()
    run = SyncRunFactory(state=SyncRun.State.RUNNING, started_at=started, progress_total=10)
    assert run.time_left(now=started + timedelta(seconds=30)) is None  # no page yet
    run.progress_done = 2
    assert run.time_left(now=started + timedelta(seconds=30)) == timedelta(minutes=2)
    run.progress_total = 0  # a total not known: no estimate rather than a wrong one
    assert run.time_left(now=started + timedelta(seconds=30)) is None
    run.progress_total, run.state = 10, SyncRun.State.SUCCEEDED
    assert run.time_left(now=started + timedelta(seconds=30)) is None
