"""Requests sent at once (reconcile.core.parallel): every page arrives, in order, or the run
fails readably with the last good import untouched. Outcomes only, never timings."""

import pytest

from psa.models import BillingLine, PSACompany
from reconcile.core.parallel import in_parallel
from reconcile.sync import services as sync_services
from reconcile.sync.models import SyncRun

from .conftest import KINDS

# Small pages, so one list has many pages in flight at once (Syncro's 25 are fixed).
SMALL_PAGES = {"connectwise": {"page_size": 10}, "halo": {"page_size": 10}, "autotask": {}}


def small(kind: str, concurrency: int) -> dict:
    return SMALL_PAGES.get(kind, {}) | {"concurrency": concurrency}


def listed(adapter) -> tuple[list, list]:
    """Page numbers with their ids, of companies and of billing lines."""
    companies = [(p.number, [c.external_id for c in p.items]) for p in adapter.iter_companies()]
    lines = [(p.number, [x.external_id for x in p.items]) for p in adapter.iter_billing_lines([])]
    return companies, lines


def test_pages_fetched_at_once_are_the_pages_fetched_one_by_one(psa_sandbox):
    one_by_one = listed(psa_sandbox.adapter(**small(psa_sandbox.kind, 1)))
    # A slow answer among fast ones: the pages after it arrive first and wait their turn.
    start = psa_sandbox.state()["requests"]
    psa_sandbox.faults(slow_on_requests=[start + 3], slow_seconds=0.5)
    at_once = listed(psa_sandbox.adapter(**small(psa_sandbox.kind, 8)))
    assert at_once == one_by_one
    assert sum(len(ids) for _, ids in one_by_one[1]) > 0


def test_rate_limited_requests_in_flight_are_retried_and_nothing_is_lost(psa_sandbox):
    one_by_one = listed(psa_sandbox.adapter(**small(psa_sandbox.kind, 1)))
    start = psa_sandbox.state()["requests"]
    # 429s on requests sent at once (the first page's followers), each retried.
    psa_sandbox.faults(fail_on_requests=[start + 2, start + 3], fail_status=429)
    assert listed(psa_sandbox.adapter(**small(psa_sandbox.kind, 8))) == one_by_one
    state = psa_sandbox.state()
    assert state["requests"] - start >= sum(len(p) for p in one_by_one) + 2  # both retried


@pytest.mark.parametrize("kind", KINDS)
def test_a_server_error_on_one_of_eight_in_flight_fails_the_run_and_keeps_the_import(
    kind, make_psa_connection, psa_state, psa_faults
):
    connection = make_psa_connection(kind, **small(kind, 8))
    before = sorted(
        BillingLine.objects.filter(connection=connection).values_list("external_id", "quantity")
    )
    companies = PSACompany.objects.filter(connection=connection, missing_since=None).count()
    assert before and companies
    start = psa_state(kind)["requests"]
    psa_faults(kind, fail_on_requests=[start + 4], fail_status=500)

    run = sync_services.queue_sync(connection, trigger="manual")
    sync_services.run_sync(run.pk)

    run.refresh_from_db()
    assert run.state == SyncRun.State.FAILED
    assert "server error (HTTP 500)" in run.error_message
    assert run.error_class == "ServerFault"
    after = BillingLine.objects.filter(connection=connection)
    assert sorted(after.values_list("external_id", "quantity")) == before
    assert not after.exclude(missing_since=None).exists()
    assert PSACompany.objects.filter(connection=connection, missing_since=None).count() == companies


def test_results_come_in_order_and_the_first_failure_stops_the_rest():
    started = []

    def work(n):
        started.append(n)
        if n == 3:
            raise ValueError("three")
        return n * 10

    results = []
    with pytest.raises(ValueError, match="three"):
        for result in in_parallel(work, range(1, 100), 2):
            results.append(result)
    assert results in ([], [10], [10, 20])  # in order, up to the failure (raised at once)
    assert len(started) < 99  # items not yet started were never started

    assert list(in_parallel(lambda n: -n, range(50), 4)) == [-n for n in range(50)]
    assert list(in_parallel(lambda n: n, [], 4)) == []
