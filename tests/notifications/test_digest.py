"""The change digest's arithmetic and its cost, on change points built with factories."""

from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reconcile.mapping.models import AccountMapping
from reconcile.notifications import services
from reconcile.notifications.models import Notification
from reconcile.sync.models import SyncRun
from tests.factories import (
    MembershipFactory,
    SyncRunFactory,
    UsageSnapshotFactory,
    VendorAccountFactory,
    VendorConnectionFactory,
    VendorServiceFactory,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "before, now, crossed",
    [
        (100, 109, True),  # 9 users
        (100, 104, False),  # 4 users, 4 %
        (30, 27, True),  # 10 %
        (30, 28, False),  # 2 users, 6.7 %
        (0, 1, True),
        (None, 3, True),
        (40, 40, False),
    ],
)
def test_a_move_crosses_at_10_percent_or_5_users(before, now, crossed):
    assert services.crossed(before, now, percent=10, users=5) is crossed


def two_runs(accounts: int, organization=None):
    """A vendor connection whose second run moved every account from 50 to 80 users, across
    two services each (a subscription and an add-on reporting the same count)."""
    connection = VendorConnectionFactory(**({"organization": organization} if organization else {}))
    earlier = timezone.now() - timedelta(days=1)
    first = SyncRunFactory(vendor_connection=connection, state=SyncRun.State.SUCCEEDED)
    now = timezone.now()
    run = SyncRunFactory(
        vendor_connection=connection,
        state=SyncRun.State.SUCCEEDED,
        started_at=now - timedelta(minutes=1),
        finished_at=now + timedelta(seconds=1),
    )
    services_ = [VendorServiceFactory(connection=connection) for _ in range(2)]
    for _ in range(accounts):
        account = VendorAccountFactory(connection=connection, first_seen_at=earlier)
        for service in services_:
            UsageSnapshotFactory(
                account=account,
                service=service,
                active_users=50,
                taken_at=earlier,
                sync_run_id=first.pk,
                is_current=False,
            )
            UsageSnapshotFactory(
                account=account, service=service, active_users=80, taken_at=now, sync_run_id=run.pk
            )
    return run


def test_the_digest_takes_the_same_few_queries_for_2_or_40_accounts():
    small, large = two_runs(2), two_runs(40)
    with CaptureQueriesContext(db_connection) as few:
        found = services.digest(small)
    with CaptureQueriesContext(db_connection) as many:
        found_many = services.digest(large)
    assert len(few) == len(many) <= 5
    assert [(before, now) for _, before, now in found.moved] == [(50, 80), (50, 80)]
    assert len(found_many.moved) == 40


def test_excluded_accounts_and_earlier_history_stay_out(organization):
    run = two_runs(2, organization)
    excluded = run.vendor_connection.accounts.order_by("id").first()
    AccountMapping.objects.create(
        organization=organization, vendor_account=excluded, state="excluded", source="manual"
    )
    # Older history of the other account does not count: only its latest earlier points.
    other = run.vendor_connection.accounts.exclude(pk=excluded.pk).get()
    UsageSnapshotFactory(
        account=other,
        service=other.usage.first().service,
        active_users=79,
        taken_at=timezone.now() - timedelta(days=30),
        is_current=False,
    )
    found = services.digest(run)
    assert found.moved == [(other.name, 50, 80)]


def test_the_receiver_writes_one_digest_per_member_in_constant_queries(organization):
    for _ in range(3):
        MembershipFactory(organization=organization)
    run = two_runs(5, organization)
    with CaptureQueriesContext(db_connection) as queries:
        assert services.on_sync_succeeded(SyncRun, run=run) == 3
    assert len(queries) <= 12
    notification = Notification.objects.first()
    assert notification.subject == f"Changes after the sync of {run.connection}: 5 moved"


def test_psa_runs_and_first_imports_have_no_digest(organization):
    run = two_runs(2, organization)
    MembershipFactory(organization=organization)
    SyncRun.objects.exclude(pk=run.pk).delete()  # as if this were the first import
    assert services.on_sync_succeeded(SyncRun, run=run) == 0
    psa_run = SyncRunFactory.build(vendor_connection=None, organization=organization)
    assert services.on_sync_succeeded(SyncRun, run=psa_run) == 0
    assert not Notification.objects.exists()
