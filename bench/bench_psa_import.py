"""Import the bench partner's 20,000 billing lines from each PSA sandbox; print the figures.

    scripts/with-postgres.sh .venv/bin/python bench/bench_psa_import.py [--rtt 0.15]
        [--partner demo] [--kinds connectwise,halo] [--once]

Runs the real pipeline (reconcile.sync.services.run_sync) against the sandboxes, started as
their own process on 127.0.0.1, in a throwaway test database. Goal (issue #4): SQL queries grow
with pages, not rows. Each PSA is imported twice: first (all rows new), then unchanged.
"""

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
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

from bench import latency  # noqa: E402
from bench.bench_knowbe4_import import start_sandbox  # noqa: E402
from psa.providers import PROVIDERS  # noqa: E402
from sandboxes.demo import psa_connection_fields  # noqa: E402


def main():
    options = latency.arguments(
        __doc__.splitlines()[0],
        partner={"default": "bench", "help": "sandbox partner: demo or bench"},
        kinds={"default": "", "help": "comma-separated PSA kinds (default: all)"},
        once={"action": "store_true", "help": "only the first import"},
    )
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    base_url, sandbox = start_sandbox()
    try:
        run_all(base_url, options)
    finally:
        sandbox.terminate()
        sandbox.wait()
        connection.creation.destroy_test_db(old_name, verbosity=0)


def run_all(base_url, options):
    from psa.models import BillingLine, PSAConnection
    from reconcile.sync import services as sync_services
    from reconcile.sync.models import SyncRun
    from tests.factories import MembershipFactory

    organization = MembershipFactory().organization
    print(f"database: {connection.vendor}; {os.cpu_count()} cores; RTT {options.rtt:g} s")
    print(
        f"{'PSA':<12} {'import':<10} {'lines':>6} {'pages':>5} {'HTTP req':>8} {'SQL':>5} "
        f"{'conc':>4} {'wall s':>7} {'floor s':>7} {'wall/floor':>10}"
    )
    kinds = options.kinds.split(",") if options.kinds else PROVIDERS.kinds()
    for kind in kinds:
        settings, secrets = psa_connection_fields(kind, base_url, options.partner)
        adapter_class = PROVIDERS[kind].adapter_class
        rates = adapter_class.default_rates or []
        if kind != "autotask" and rates:
            settings["requests_per_minute"] = 100_000  # the bench times TrueUp, not the budget
            rates = []
        # A whole hour of Autotask budget for one import is allowed here; MSPs share it.
        psa = sync_services.connect(
            PSAConnection, organization, None, kind=kind, settings=settings, secrets=secrets
        )
        for label in ("first",) if options.once else ("first", "unchanged"):
            httpx.post(f"{base_url}/_sandbox/reset").raise_for_status()
            latency.set_delay(base_url, kind, options.rtt)
            run = SyncRun.objects.create(
                organization=organization, psa_connection=psa, trigger="manual"
            )
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                sync_services.run_sync(run.pk)
                wall = time.perf_counter() - started
            run.refresh_from_db()
            assert run.state == "succeeded", run.error_message
            requests = httpx.get(f"{base_url}/_sandbox/{kind}/state").json()["requests"]
            lines = BillingLine.objects.filter(connection=psa, missing_since=None).count()
            concurrency = adapter_class.default_concurrency
            floor = latency.floor(requests, options.rtt, concurrency, rates)
            print(
                f"{kind:<12} {label:<10} {lines:>6} {run.progress_done:>5} {requests:>8} "
                f"{len(queries):>5} {concurrency:>4} {wall:>7.2f} {floor:>7.2f} "
                f"{latency.ratio(wall, floor):>10}",
                flush=True,
            )


if __name__ == "__main__":
    main()
