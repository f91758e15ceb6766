"""Push 500 approved quantity changes to the ConnectWise sandbox under its rate limit.

    scripts/with-postgres.sh .venv/bin/python bench/bench_push.py [--limit 2000] [--pushes 500]
        [--rtt 0.15]

Runs the real push path in a throwaway test database against the sandboxes, started as their
own process on 127.0.0.1. The bench partner's ConnectWise (20,000 lines) is connected and
imported with reconcile.sync, then given the connection setting `requests_per_minute` equal to
the sandbox's `rate_limit_per_minute` (the budget an MSP gives TrueUp) and a KnowBe4 side
(accounts, usage, mappings) so that reconcile_organization yields one Reconcile card per chosen
line. The cards are approved (reconcile.review.services.approve), turned into a Test Mode report
(push.test_mode) and confirmed (push.confirm), which runs the worker task inline (django-q2 in
sync mode): push.run_batch reads, writes and reads back every line through one adapter, then
reconciles. Wall time is from confirm to the batch finished.

Goals (issue acceptance): wall time at most 1.15x the rate-limit floor (1.3x the round-trip
floor with --rtt: requests x RTT / the connection's concurrency, where that is higher; `--limit
0` sets no budget), and no lost or doubled push. The rate-limit floor is the least time the
budget allows for the requests the push needed:
(requests the sandbox counted - the ones it answered 429) x 60 / limit, i.e. those requests
sent at exactly the budget's steady rate. (A sliding minute would let a client burst a whole
minute's budget at once; TrueUp's pacing spreads it, at most limit/60 a second, because the
budget is shared with the MSP's other integrations, and keeps a second of slack per minute,
reconcile.core.http.SLACK_MS: 1/61 of the floor.) 429 answers are shown separately: with pacing
there should be none. Lost: a chosen line whose quantity, read back from the sandbox
after the run, is not its target. Doubled: a line the sandbox's write log shows written more
than once.

The crash run then pushes one more line the way a worker that died mid-push leaves it: the
PSA applied the write, the item stayed `pushing`; push.retry recovers it as interrupted and
sends it again, and the write log must still hold exactly one write for that line.
"""

import argparse
import collections
import datetime
import logging
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reconcile.settings")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.conf import settings as django_settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Q  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_q.conf import Conf  # noqa: E402

from bench import latency  # noqa: E402
from bench.bench_knowbe4_import import start_sandbox  # noqa: E402
from sandboxes.demo import psa_connection_fields  # noqa: E402

KIND = "connectwise"
PARTNER = "bench"  # 20,000 lines (the demo partner has fewer than 500 to push)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--limit",
        type=int,
        default=2000,
        help="requests per minute: the sandbox's rate limit and the connection's budget "
        "(default 2000: about 2,500 requests take 75 s)",
    )
    parser.add_argument("--pushes", type=int, default=500, help="lines to push (default 500)")
    parser.add_argument(
        "--rtt", type=float, default=0.0, help="seconds each sandbox answer is delayed"
    )
    options = parser.parse_args()
    for name in ("django-q", "pyrate_limiter"):  # one line per task and per limiter: noise here
        logging.getLogger(name).setLevel(logging.WARNING)
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    base_url, sandbox = start_sandbox()
    try:
        run_all(base_url, options.limit, options.pushes, options.rtt)
    finally:
        sandbox.terminate()
        sandbox.wait()
        connection.creation.destroy_test_db(old_name, verbosity=0)


def sandbox_call(base_url, method, what, **kwargs):
    response = httpx.request(method, f"{base_url}/_sandbox/{KIND}/{what}", **kwargs)
    response.raise_for_status()
    return response.json()


def run_all(base_url, limit, count, rtt):
    from psa import services
    from psa.models import PSAConnection
    from psa.providers import PROVIDERS
    from reconcile.sync import services as sync_services
    from reconcile.sync.models import SyncRun
    from tests.factories import MembershipFactory

    membership = MembershipFactory(role="owner")
    actor, organization = membership.user, membership.organization
    settings, secrets = psa_connection_fields(KIND, base_url, PARTNER)
    check = PROVIDERS[KIND].adapter_class(settings=settings, secrets=secrets).test()  # the codebase
    psa = sync_services.connect(
        PSAConnection,
        organization,
        actor,
        kind=KIND,
        settings=settings | check.settings,
        secrets=secrets,
    )
    run = SyncRun.objects.create(organization=organization, psa_connection=psa, trigger="manual")
    sync_services.run_sync(run.pk)  # the import, unpaced: not what is measured here
    run.refresh_from_db()
    assert run.state == "succeeded", run.error_message
    # The budget the MSP gives TrueUp, set as on the connection page.
    services.set_request_budget(psa, actor, limit or None, None)
    psa.refresh_from_db()
    concurrency = psa.adapter().concurrency

    groups = pushable_groups(psa)
    if len(groups) < count + 1:
        raise SystemExit(f"the {PARTNER} partner has only {len(groups)} pushable lines")
    rng = random.Random(7)
    rng.shuffle(groups)
    cards = give_vendor_side(organization, groups[: count + 1], rng)
    # What each card's line must bill after its push (cards compare quantity + included).
    targets = {card.line_id: card.target - card.line.included_quantity for card in cards}
    main_lines, spare = [card.line for card in cards[:count]], cards[count].line

    print(
        f"database: {connection.vendor}; {os.cpu_count()} cores; ConnectWise sandbox; "
        f"RTT {rtt:g} s; {concurrency} at once"
    )
    print()
    print(
        "| run | limit/min | lines | HTTP req | 429s | SQL | floor s | wall s | wall/floor "
        "| lost | doubled |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    # The sandbox as a fresh PSA (its data is the same deterministic universe we imported),
    # with its rate limit on.
    sandbox_call(base_url, "POST", "reset")
    sandbox_call(
        base_url,
        "POST",
        "faults",
        json={"rate_limit_per_minute": limit or None, "delay_seconds": rtt},
    )
    Conf.SYNC = True  # confirm() runs the worker task (push.run_batch) inline
    batch, wall, queries = push_lines(organization, actor, main_lines)
    state = sandbox_call(base_url, "GET", "state")
    requests, limited = state["requests"], state["rate_limited"]
    budget_floor = (requests - limited) * 60 / limit if limit else 0.0
    round_trips = latency.floor(requests - limited, rtt, concurrency)
    floor, goal = max((budget_floor, 1.15), (round_trips, 1.3))
    lost = lost_lines(base_url, psa, main_lines, targets)
    doubled = doubled_lines(state["writes"])
    print(
        f"| {count} approved changes | {limit} | {len(main_lines)} | {requests} | {limited} "
        f"| {queries} | {floor:.1f} | {wall:.1f} | {wall / floor:.3f} | {lost} | {doubled} |"
    )

    line = spare
    crash_wall, crash_doubled, note = crash_and_retry(base_url, psa, organization, actor, line)
    writes = sandbox_call(base_url, "GET", "state")["writes"]
    lost = lost_lines(base_url, psa, [line], targets)
    print(
        f"| worker died after the write, retried | {limit} | 1 | – | – | – | – "
        f"| {crash_wall:.1f} | – | {lost} | {crash_doubled} |"
    )
    print()
    print(f"crash run: {note}; {len(writes)} writes logged in all")
    print(f"doubled: {doubled + crash_doubled}")
    if wall / floor > goal or lost or doubled or crash_doubled:
        raise SystemExit(f"goal missed: wall/floor <= {goal} and no lost or doubled push")


def pushable_groups(psa) -> list[list]:
    """Lines grouped by company and product, as reconcile_organization compares them; only
    groups with a line TrueUp can push (reconciliation puts the difference on one of those)."""
    from psa.models import BillingLine

    today = timezone.localdate()
    lines = (
        BillingLine.objects.filter(
            connection=psa, missing_since=None, company__isnull=False, product__isnull=False
        )
        .filter(Q(cancelled_date__isnull=True) | Q(cancelled_date__gt=today))
        .select_related("container")
        .order_by("id")
    )
    groups = collections.defaultdict(list)
    for line in lines:
        groups[(line.company_id, line.product_id)].append(line)
    return [group for group in groups.values() if any(not li.read_only_reason for li in group)]


def give_vendor_side(organization, groups, rng) -> list:
    """A KnowBe4 account per company and a service per product, whose active users differ from
    what each group bills by a few seats; reconciled. Returns each group's Reconcile card."""
    from integrations.models import UsageSnapshot, VendorAccount, VendorService
    from reconcile.mapping.models import AccountMapping, ServiceMapping
    from reconcile.review.models import SeatDiscrepancy
    from reconcile.review.services import reconcile_organization
    from tests.factories import VendorConnectionFactory

    vendor = VendorConnectionFactory(organization=organization)
    keys = [(group[0].company_id, group[0].product_id) for group in groups]
    accounts = {
        company: VendorAccount.objects.create(
            organization=organization,
            connection=vendor,
            external_id=str(company),
            name=str(company),
        )
        for company in sorted({company for company, _ in keys})
    }
    services = {
        product: VendorService.objects.create(
            organization=organization, connection=vendor, code=f"sat-{product}", name=str(product)
        )
        for product in sorted({product for _, product in keys})
    }
    AccountMapping.objects.bulk_create(
        AccountMapping(
            organization=organization,
            vendor_account=account,
            psa_company_id=company,
            state="mapped",
            source="manual",
        )
        for company, account in accounts.items()
    )
    ServiceMapping.objects.bulk_create(
        ServiceMapping(
            organization=organization,
            vendor_service=service,
            psa_product_id=product,
            state="mapped",
            source="manual",
        )
        for product, service in services.items()
    )
    usage = []
    for (company, product), group in zip(keys, groups, strict=True):
        change = rng.choice([-3, -2, -1, 1, 2, 3, 5, 10])
        if any(line.quantity < 3 for line in group):
            change = abs(change)  # whichever line takes the difference stays above zero
        billed = sum(line.quantity + line.included_quantity for line in group)
        usage.append(
            UsageSnapshot(
                organization=organization,
                account=accounts[company],
                service=services[product],
                active_users=int(billed + change),
            )
        )
    UsageSnapshot.objects.bulk_create(usage)
    reconcile_organization(organization)
    cards = {
        (card.psa_company_id, card.psa_product_id): card
        for card in SeatDiscrepancy.objects.filter(
            organization=organization, kind=SeatDiscrepancy.Kind.RECONCILE
        ).select_related("line__container")
    }
    assert set(keys) <= set(cards), f"{len(set(keys) - set(cards))} groups have no card"
    return [cards[key] for key in keys]


def push_lines(organization, actor, lines):
    """Approve the lines' cards, Test Mode, confirm (the worker runs inline); timed."""
    from reconcile.review import push
    from reconcile.review import services as review
    from reconcile.review.models import PushBatch, PushItem, SeatDiscrepancy

    ids = list(SeatDiscrepancy.objects.filter(line__in=lines).values_list("id", flat=True))
    assert review.approve(organization, actor, ids) == len(lines)
    batch = push.test_mode(organization, actor)
    planned = batch.items.filter(state=PushItem.State.PLANNED).count()
    assert planned == len(lines), f"{planned} of {len(lines)} lines can be pushed"
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        push.confirm(batch, actor)
        wall = time.perf_counter() - started
    batch.refresh_from_db()
    assert batch.state == PushBatch.State.FINISHED, batch.state
    outcomes = collections.Counter(batch.items.values_list("state", flat=True))
    assert outcomes == {PushItem.State.CONFIRMED: len(lines)}, outcomes
    return batch, wall, len(queries)


def lost_lines(base_url, psa, lines, targets) -> int:
    """Lines the sandbox does not bill at their target, read with an unpaced adapter once the
    sandbox's rate limit is off (verification is not part of the timed run)."""
    from psa.providers import PROVIDERS
    from psa.providers.base import LineKey

    faults = sandbox_call(base_url, "GET", "faults")
    sandbox_call(base_url, "POST", "faults", json={"rate_limit_per_minute": None})
    settings = {k: v for k, v in psa.settings.items() if k != "requests_per_minute"}
    adapter = PROVIDERS[KIND].adapter_class(settings=settings, secrets=psa.secrets())
    lost = 0
    for line in lines:
        key = LineKey(container_id=line.container.external_id, line_id=line.external_id)
        if adapter.read_line(key).quantity != targets[line.pk]:
            lost += 1
    adapter.close()
    sandbox_call(
        base_url, "POST", "faults", json={"rate_limit_per_minute": faults["rate_limit_per_minute"]}
    )
    return lost


def doubled_lines(writes) -> int:
    per_line = collections.Counter(w["id"] for w in writes if w["method"] in ("PATCH", "PUT"))
    return sum(1 for n in per_line.values() if n > 1)


def crash_and_retry(base_url, psa, organization, actor, line):
    """A worker that died after the PSA applied its write: the item is left `pushing`, stale.
    push.retry recovers it (interrupted), queues it and the worker pushes it again."""
    from psa.services import set_quantity
    from reconcile.review import push
    from reconcile.review import services as review
    from reconcile.review.models import PushBatch, PushItem, SeatDiscrepancy

    card = SeatDiscrepancy.objects.get(line=line)
    review.approve(organization, actor, [card.pk])
    batch = push.test_mode(organization, actor)
    Conf.SYNC = False  # confirm only enqueues; this "worker" runs by hand and dies
    push.confirm(batch, actor)
    item = batch.items.get(state=PushItem.State.QUEUED)
    PushBatch.objects.filter(pk=batch.pk).update(state=PushBatch.State.RUNNING)
    PushItem.objects.filter(pk=item.pk).update(state=PushItem.State.PUSHING, attempts=1)
    adapter = psa.adapter()
    first = set_quantity(line, item.new_quantity, item.effective_date, actor, adapter)
    adapter.close()
    assert first.outcome == "confirmed", first.message
    # ... and the worker died before recording it: the item stays `pushing` until it is stale.
    stale = timezone.now() - datetime.timedelta(seconds=django_settings.TRUEUP_PUSH_STALE_AFTER + 1)
    PushItem.objects.filter(pk=item.pk).update(updated_at=stale)

    Conf.SYNC = True
    started = time.perf_counter()
    assert push.retry(batch, actor) == 1
    wall = time.perf_counter() - started
    item.refresh_from_db()
    assert item.state == PushItem.State.CONFIRMED, (item.state, item.message)
    assert item.attempts == 2, item.attempts
    writes = sandbox_call(base_url, "GET", "state")["writes"]
    mine = [w for w in writes if str(w["id"]) == line.external_id]
    note = f"{len(mine)} write of the line logged; the retry said: {item.message}"
    return wall, int(len(mine) > 1), note


if __name__ == "__main__":
    main()
