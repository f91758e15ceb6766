"""Count 20,000 active users over the KnowBe4 Reporting API sandbox, with its limits on.

    scripts/with-postgres.sh .venv/bin/python bench/bench_reporting_api.py [--rtt 0.15]

Runs the real pipeline (reconcile.sync.services.run_sync) for one Reporting API connection
against the sandbox, started as its own process (`python -m sandboxes`) on 127.0.0.1, in a
throwaway test database. The sandbox tenant has 20,000 active users (and archived ones, which
must not count) and the Reporting API's limits: 4 requests per second, 50 per minute, 2,000 +
seats per day, refused with a bare 429. Goals (issue #7): wall time at most 1.1x the floor the
4 requests/second limit sets for the requests made, and no 429 answer at all. The floor is the
strict one: N requests need at least ceil(N/4) - 1 seconds (four at once, then four more each
second; N/4 seconds at an even 4 a second is half a second more for 42 requests).
"""

import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reconcile.settings")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from bench import latency  # noqa: E402
from bench.bench_knowbe4_import import start_sandbox  # noqa: E402
from integrations.models import VendorConnection  # noqa: E402

ACTIVE_USERS = 20_000
ARCHIVED_USERS = 1_500
SCENARIOS = [  # label, exclusion patterns
    ("no exclusions", []),
    ("2 exclusions", ["svc-*@", "scanner@"]),
]


def main():
    options = latency.arguments(__doc__.splitlines()[0])
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    base_url, sandbox = start_sandbox()
    try:
        run_all(base_url, options.rtt)
    finally:
        sandbox.terminate()
        sandbox.wait()
        connection.creation.destroy_test_db(old_name, verbosity=0)


def run_all(base_url, rtt=0.0):
    from integrations import services
    from integrations.models import VendorAccount
    from reconcile.sync import services as sync_services
    from reconcile.sync.models import SyncRun
    from tests.factories import MembershipFactory, VendorConnectionFactory

    tenant = httpx.post(
        f"{base_url}/_sandbox/knowbe4/reporting-keys",
        json={
            "active_users": ACTIVE_USERS,
            "archived_users": ARCHIVED_USERS,
            "seats": ACTIVE_USERS,
            "service_accounts": 3,
            "name": "Bench Reporting Tenant",
        },
        timeout=120,
    ).json()
    membership = MembershipFactory()
    organization = membership.organization
    vendor = VendorConnectionFactory(
        organization=organization,
        kind="knowbe4_reporting",
        settings={"region": "us", "base_url": tenant["base_url"]},
        credential=tenant["key"],
    )
    adapters = []
    original = VendorConnection.adapter

    def keep(conn):
        adapters.append(original(conn))
        return adapters[-1]

    VendorConnection.adapter = keep
    assert vendor.provider.adapter_class  # imported once by a worker, not timed per sync
    print(f"database: {connection.vendor}; {os.cpu_count()} cores; RTT {rtt:g} s")
    print(
        f"tenant: {ACTIVE_USERS:,} active + {ARCHIVED_USERS:,} archived users; limits 4/s, "
        "50/min, 2,000 + seats/day; 429s carry no headers"
    )
    print(
        f"{'scenario':<14} {'active':>7} {'excluded':>8} {'billable':>8} {'requests':>8} "
        f"{'429s':>5} {'wall s':>7} {'floor s':>7} {'wall/floor':>10}"
    )
    for label, patterns in SCENARIOS:
        httpx.post(f"{base_url}/_sandbox/reset").raise_for_status()
        latency.set_delay(base_url, "knowbe4_reporting", rtt, tenant["key"])
        # Patterns belong to the account, which the first scenario's import creates.
        account = VendorAccount.objects.filter(connection=vendor).first()
        if account is not None:
            account.exclusions.all().delete()
            for pattern in patterns:
                services.add_exclusion(account, membership.user, pattern)
        run = SyncRun.objects.create(
            organization=organization, vendor_connection=vendor, trigger="manual"
        )
        started = time.perf_counter()
        sync_services.run_sync(run.pk)
        wall = time.perf_counter() - started
        run.refresh_from_db()
        assert run.state == "succeeded", run.error_message
        account = VendorAccount.objects.get(connection=vendor)
        assert account.active_users + account.excluded_users == ACTIVE_USERS
        state = httpx.get(f"{base_url}/_sandbox/knowbe4/keys/{tenant['key']}").json()
        requests, refused = state["request_count"], state["rate_limited"]
        assert adapters[-1].throttled == refused
        # The 4/s limit's floor, or the round trips' (one key's pages follow each other).
        floor = max(math.ceil(requests / 4) - 1, latency.floor(requests, rtt, 1))
        print(
            f"{label:<14} {account.active_users + account.excluded_users:>7,} "
            f"{account.excluded_users:>8,} {account.active_users:>8,} {requests:>8} "
            f"{refused:>5} {wall:>7.2f} {floor:>7.2f} {wall / floor:>10.2f}"
        )


if __name__ == "__main__":
    main()
