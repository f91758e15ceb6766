"""Import KnowBe4 partner accounts from the sandbox and print wall time, HTTP and SQL figures.

    .venv/bin/python bench/bench_knowbe4_import.py [--rtt 0.15]   # SQLite (or DATABASE_URL's)

Runs the real pipeline (reconcile.sync.services.run_sync) against the sandbox, started as its
own process (`python -m sandboxes`) on 127.0.0.1, in a throwaway test database. Goals (issue
#3): SQL queries grow with pages, not accounts. With --rtt (issue 16): wall time at most 1.3x
the floor, requests x RTT / the adapter's concurrency (pages after the first go out at once).
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reconcile.settings")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

from integrations.models import VendorConnection  # noqa: E402
from sandboxes.data import partner_by_slug  # noqa: E402


def main():
    from bench import latency

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


def start_sandbox():
    """The sandbox in its own process, as the real API is: its work does not share our GIL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "sandboxes", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(base_url + "/_sandbox/knowbe4/keys").raise_for_status()
            return base_url, process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the sandbox did not start")


def run_all(base_url, rtt=0.0):
    from bench import latency
    from reconcile.sync import services as sync_services
    from reconcile.sync.models import SyncRun
    from tests.factories import MembershipFactory, VendorConnectionFactory

    organization = MembershipFactory().organization
    adapters = []
    original = VendorConnection.adapter

    def keep(conn):
        adapters.append(original(conn))
        return adapters[-1]

    VendorConnection.adapter = keep
    print(f"database: {connection.vendor}; {os.cpu_count()} cores; RTT {rtt:g} s")
    print(
        f"{'partner':<8} {'accounts':>8} {'per':>4} {'pages':>5} {'import':<9} {'HTTP req':>8} "
        f"{'SQL':>5} {'conc':>4} {'wall s':>7} {'floor s':>7} {'wall/floor':>10}"
    )
    for slug, per in [("demo", 100), ("bench", 500), ("bench", 100)]:
        partner = partner_by_slug(slug)
        settings.KNOWBE4_PAGE_SIZE = per
        vendor = VendorConnectionFactory(
            organization=organization,
            settings={"region": "us", "base_url": f"{base_url}/knowbe4/us/graphql"},
            credential=partner.key,
        )
        for label in ("first", "unchanged"):
            httpx.post(f"{base_url}/_sandbox/reset")
            latency.set_delay(base_url, "knowbe4_partner", rtt, partner.key)
            run = SyncRun.objects.create(
                organization=organization, vendor_connection=vendor, trigger="manual"
            )
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                sync_services.run_sync(run.pk)
                wall = time.perf_counter() - started
            run.refresh_from_db()
            assert run.state == "succeeded", run.error_message
            requests = httpx.get(f"{base_url}/_sandbox/knowbe4/keys/{partner.key}").json()[
                "request_count"
            ]
            concurrency = adapters[-1].concurrency
            floor = latency.floor(requests, rtt, concurrency)
            print(
                f"{slug:<8} {vendor.accounts.count():>8} {per:>4} {run.progress_total:>5} "
                f"{label:<9} {requests:>8} {len(queries):>5} {concurrency:>4} {wall:>7.2f} "
                f"{floor:>7.2f} {latency.ratio(wall, floor):>10}",
                flush=True,
            )


if __name__ == "__main__":
    main()
