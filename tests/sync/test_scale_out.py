"""Scale-out: two django-q2 clusters on one PostgreSQL never run a connection twice."""

import time

import pytest
from django.db import connection as db
from django_q.conf import Conf
from django_q.models import Success
from django_q.tasks import async_task

from integrations.models import VendorConnection
from reconcile.sync import services as lifecycle
from reconcile.sync.models import SyncRun
from reconcile.sync.services import queue_sync

pytestmark = pytest.mark.django_db(transaction=True)
CONNECTIONS = 20


def test_two_worker_clusters_run_each_of_20_connections_exactly_once(
    sandbox, organization, owner, start_worker, monkeypatch
):
    if db.vendor != "postgresql":
        pytest.fail("The scale-out test needs PostgreSQL: run it with `make test`.")
    monkeypatch.setattr(Conf, "SYNC", False)  # tasks go to the shared ORM broker
    runs = []
    for number in range(CONNECTIONS):
        connection = lifecycle.connect(
            VendorConnection,
            organization,
            owner,
            kind="knowbe4_partner",
            settings={"region": "us", "base_url": sandbox.graphql_url("us"), "api_schema": "2023"},
            secrets={"api_key": sandbox.demo_key},
            description=f"Partner key {number}",
        )
        run = queue_sync(connection, trigger="manual", actor=owner)
        # The same run handed out twice, as a retried or duplicated message would be: both
        # clusters may pick a copy, and only one may run it.
        async_task("reconcile.sync.tasks.sync_connection", run.pk, group="scale-out")
        runs.append(run.pk)
    started = time.monotonic()
    start_worker()
    start_worker()
    deadline = started + 180
    while SyncRun.objects.filter(pk__in=runs, state__in=["queued", "running"]).exists():
        assert time.monotonic() < deadline, "the two clusters did not finish the 20 syncs"
        time.sleep(0.5)
    print(f"\n{CONNECTIONS} syncs on two clusters: {time.monotonic() - started:.1f} s")
    assert SyncRun.objects.count() == CONNECTIONS
    assert set(SyncRun.objects.values_list("state", flat=True)) == {"succeeded"}
    # Every run's accounts were merged once: 160 accounts per connection, no duplicates.
    for run in SyncRun.objects.select_related("vendor_connection"):
        assert run.vendor_connection.accounts.count() == 160
        assert run.added == 160
    # 40 task executions: 20 ran a sync, 20 found their run already claimed.
    deadline = time.monotonic() + 30
    while Success.objects.filter(func="reconcile.sync.tasks.sync_connection").count() < 40:
        assert time.monotonic() < deadline, "some task copies never ran"
        time.sleep(0.5)
    results = list(
        Success.objects.filter(func="reconcile.sync.tasks.sync_connection").values_list(
            "result", flat=True
        )
    )
    assert sorted(results) == ["not claimed"] * CONNECTIONS + ["succeeded"] * CONNECTIONS
