"""Load test: the dashboard, review and mapping pages under concurrent clients while a sync and
a push batch run; print requests per second, p50/p95/p99 latency and errors per page.

    scripts/with-postgres.sh .venv/bin/python bench/load.py [--clients 8] [--duration 60]
        [--customers 2000] [--lines 10000] [--web-workers 4] [--web-threads 1]
        [--drift 500] [--pushes 50] [--no-history] [--think 0] [--rtt 0.15]

Everything runs on this machine, on 127.0.0.1 only, in a throwaway test database (created next
to DATABASE_URL's, dropped at the end):

1. The organization is built the way an MSP gets there. The sandboxes start in their own
   process with the "bench" partner sized by their own generator to --customers KnowBe4
   accounts and --lines PSA billing lines (all products; its usual size is 5,000 and 20,000).
   Its ConnectWise and its KnowBe4 partner key are connected and imported with the real sync
   (reconcile.sync.services.run_sync), customers mapped with mapping.services.auto_map
   (identical names), the KnowBe4 services mapped to the catalogue's KnowBe4 products, the
   setup finished and the organization reconciled. Two things are invented so that the run
   does real work: --drift mapped accounts get other active-user counts in the database (the
   sync during the load brings the sandbox's back, so it writes change points and
   reconciliation rewrites their cards), and every card gets a year of count history (the
   demo backfill's generator) so the dashboard's chart folds a year of points.
2. gunicorn (`reconcile.wsgi`, --web-workers sync processes, or gthread ones with
   --web-threads above 1) and a worker (`manage.py qcluster`, TRUEUP_WORKERS=2) start as
   subprocesses on that database with DEBUG=0 (whitenoise serves the collected, hashed static
   files), plain logs and generated keys. Each page is fetched once and must answer 200 with
   its expected text. Why 4 sync processes on 2 cores: a request is mostly Python (one core per
   process at most, the GIL) with a share of PostgreSQL on the same cores, so two processes per
   core keep both busy; a sync process takes a connection only when it is free, so the load
   spreads evenly, whereas a gthread process accepts keep-alive connections while its threads
   are busy and one of two processes was seen holding all eight clients (docs/PERFORMANCE.md).
3. --clients threads each sign in over HTTP (POST /login/ with the CSRF token) and, after one
   unmeasured round to warm up, fetch the pages in turn, with no pause between requests (or,
   with --think, a pause after each answer as a person reading it: random, exponential with
   that mean, each client its own seeded sequence, so clients that started together do not
   stay in step and arrive in bursts of eight), for --duration seconds. Two seconds in, a
   sync of the KnowBe4 connection is queued (sync.services.queue_sync); four seconds in,
   --pushes reconcile cards are approved, turned into a Test Mode report and confirmed
   (review.services.approve, push.test_mode, push.confirm), which queues the push to the
   ConnectWise sandbox. The worker runs both while the clients measure; the bench then waits
   for them to end and reports their outcome.

Printed: the hardware, the organization, then per page and overall: requests, requests per
second, p50/p95/p99 and max latency (ms, time.perf_counter around each request), errors
(non-2xx answers and exceptions), the SQL queries of one request and its time alone (Django's
test client in this process, nothing else running); the CPU seconds each kind of process used
during the measurement; the sync's and the push's outcome. Goal (issue #8): p95 under 300 ms on
every page and zero errors; the exit status is non-zero when it is missed or when the sync or
the push did not succeed.
"""

import argparse
import collections
import html
import logging
import os
import platform
import random
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="trueup-load-"))
# The settings read these when Django starts; gunicorn and the worker inherit them.
os.environ.update(
    {
        "DEBUG": "0",
        "TRUEUP_LOG_FORMAT": "plain",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_COOKIES": "0",  # plain HTTP on 127.0.0.1: cookies must not be HTTPS-only
        "STATIC_ROOT": str(WORK / "static"),
        "TRUEUP_VAR_DIR": str(WORK / "var"),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "TRUEUP_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }
)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reconcile.settings")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench import latency  # noqa: E402
from sandboxes.data import partner_by_slug  # noqa: E402
from sandboxes.demo import psa_connection_fields  # noqa: E402

EMAIL, PASSWORD = "load@trueup.example", "load-test-2026-password"
PARTNER = "bench"
GOAL_P95_MS = 300
# The sandboxes, with the bench partner sized by their own generator before they serve it.
SANDBOX = """
import dataclasses, sys
from sandboxes import data, psa_data
key = data.partner_by_slug("bench").key
data.PARTNERS[key] = dataclasses.replace(data.PARTNERS[key], size=int(sys.argv[1]))
psa_data.TARGET_LINES["bench"] = int(sys.argv[2])
from sandboxes.__main__ import main
main(["--port", sys.argv[3]])
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument(
        "--duration", type=float, default=60, help="seconds of measurement (default 60)"
    )
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn processes (4)")
    parser.add_argument(
        "--web-threads",
        type=int,
        default=1,
        help="threads per process: 1 runs sync workers, more gthread workers (1)",
    )
    parser.add_argument(
        "--drift", type=int, default=500, help="accounts whose usage the sync changes (500)"
    )
    parser.add_argument("--pushes", type=int, default=50, help="cards approved and pushed (50)")
    parser.add_argument(
        "--customers", type=int, default=2000, help="the bench partner's KnowBe4 accounts (2000)"
    )
    parser.add_argument(
        "--lines", type=int, default=10_000, help="its PSA billing lines, all products (10000)"
    )
    parser.add_argument(
        "--no-history", action="store_true", help="no invented year of count history"
    )
    parser.add_argument(
        "--rtt",
        type=float,
        default=0.0,
        help="seconds every sandbox answer is delayed during the load, a real round trip (0)",
    )
    parser.add_argument(
        "--think",
        type=float,
        default=0,
        help="mean seconds each client pauses after an answer (default 0: no pause)",
    )
    options = parser.parse_args()
    if not 1 <= options.clients <= 64 or not 1 <= options.duration <= 900:
        parser.error("--clients must be 1..64 and --duration 1..900 seconds")
    if not 0 <= options.think <= 60:
        parser.error("--think must be 0..60 seconds")
    for name in (
        "axes",
        "django-q",
        "pyrate_limiter",
        "trueup",
        "reconcile",
        "integrations",
        "psa",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    processes = []
    try:
        base_url = start_sandbox(options.customers, options.lines, processes)
        ok = run_all(options, base_url, processes)
    finally:
        for process in reversed(processes):
            stop(process)
        connection.creation.destroy_test_db(old_name, verbosity=0)
        shutil.rmtree(WORK, ignore_errors=True)
    if not ok:
        raise SystemExit(1)


# --- the organization ---------------------------------------------------------------------------


def build(base_url, options):
    from integrations.models import VendorConnection
    from psa.models import PSAConnection
    from psa.providers import PROVIDERS
    from reconcile.mapping import services as mapping
    from reconcile.review.services import reconcile_organization
    from reconcile.sync import services as lifecycle
    from reconcile.tenancy.services import sign_up

    user, organization = sign_up(EMAIL, PASSWORD, "Load Test Managed Services")
    started = time.perf_counter()
    settings, secrets_ = psa_connection_fields("connectwise", base_url, PARTNER)
    check = PROVIDERS["connectwise"].adapter_class.for_store(settings, secrets_).test()
    psa = lifecycle.connect(
        PSAConnection,
        organization,
        user,
        kind="connectwise",
        settings=settings | check.settings,
        secrets=secrets_,
    )
    import_now(organization, psa_connection=psa)
    vendor = lifecycle.connect(
        VendorConnection,
        organization,
        user,
        kind="knowbe4_partner",
        settings={"region": "us", "base_url": f"{base_url}/knowbe4/us/graphql"},
        secrets={"api_key": partner_by_slug(PARTNER).key},
    )
    import_now(organization, vendor_connection=vendor)
    mapping.auto_map(organization, user)
    map_services(organization, user)
    mapping.finish_setup(vendor, user)
    reconcile_organization(organization)
    push_ids = pushable_cards(organization, options.pushes)
    drifted = drift(organization, push_ids, options.drift)
    reconcile_organization(organization)
    history = 0 if options.no_history else invent_history(organization)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    took = time.perf_counter() - started
    return user, organization, vendor, push_ids, drifted, history, took


def import_now(organization, **connection):
    """One real import, run here (not in the worker): the organization's starting point."""
    from reconcile.sync import services as sync_services
    from reconcile.sync.models import SyncRun

    run = SyncRun.objects.create(organization=organization, trigger="manual", **connection)
    sync_services.run_sync(run.pk)
    run.refresh_from_db()
    assert run.state == "succeeded", run.error_message


def map_services(organization, user):
    """Each KnowBe4 service to the catalogue's product(s) billing it (the legacy Gold too)."""
    from integrations.models import VendorService
    from psa.models import PSAProduct
    from reconcile.mapping.services import map_service
    from sandboxes.psa_data import catalogue

    services = {s.code: s for s in VendorService.objects.filter(organization=organization)}
    products = {p.identifier: p for p in PSAProduct.objects.filter(organization=organization)}
    for product in catalogue():
        if product.kb4_level:
            code = "sat-" + product.kb4_level.lower()
        elif product.kb4_sku:
            code = "sku-" + product.kb4_sku.lower()
        else:
            continue
        if code in services and product.identifier in products:
            map_service(services[code], products[product.identifier], user)


def pushable_cards(organization, count) -> list[int]:
    """Reconcile cards whose line the push can change (nothing would block them)."""
    from psa.services import refusal_reason
    from reconcile.review.models import SeatDiscrepancy

    cards = (
        SeatDiscrepancy.objects.filter(
            organization=organization,
            kind=SeatDiscrepancy.Kind.RECONCILE,
            line__missing_since=None,
            line__read_only_reason="",
            line__cancelled_date__isnull=True,
        )
        .exclude(delta=0)
        .select_related("line__connection")
        .order_by("id")
    )
    chosen = []
    for card in cards:
        adapter = card.line.connection.provider.adapter_class
        if not refusal_reason(card.line, card.target - card.line.included_quantity, adapter):
            chosen.append(card.pk)
        if len(chosen) == count:
            break
    return chosen


def drift(organization, push_ids, count) -> int:
    """Give `count` mapped accounts (none behind a card to push) other active-user counts
    than the sandbox's, as if their users changed since the import: the sync during the load
    brings the real numbers back, writes their change points and reconciles their cards."""
    from django.db.models import F

    from integrations.models import UsageSnapshot, VendorAccount
    from reconcile.mapping.models import AccountMapping
    from reconcile.review.models import SeatDiscrepancy

    busy = SeatDiscrepancy.objects.filter(pk__in=push_ids).values("psa_company_id")
    accounts = list(
        AccountMapping.objects.filter(organization=organization, state="mapped")
        .exclude(psa_company_id__in=busy)
        .order_by("vendor_account_id")
        .values_list("vendor_account_id", flat=True)[:count]
    )
    UsageSnapshot.objects.filter(account_id__in=accounts, is_current=True).update(
        active_users=F("active_users") + 7
    )
    VendorAccount.objects.filter(pk__in=accounts).update(active_users=F("active_users") + 7)
    return len(accounts)


def invent_history(organization) -> int:
    """A year of count history per card, from the demo backfill's generator (bench data)."""
    from reconcile.review.management.commands.backfill_demo_history import invented_points
    from reconcile.review.models import CountHistory, SeatDiscrepancy

    Kind = SeatDiscrepancy.Kind
    cards = SeatDiscrepancy.objects.filter(
        organization=organization,
        kind__in=[Kind.RECONCILE, Kind.NEW_REVENUE, Kind.NO_CHANGE],
        vendor_count__isnull=False,
    ).order_by("id")
    today = timezone.localdate()
    rows = [
        CountHistory(
            organization=organization,
            line_id=card.line_id,
            psa_company_id=card.psa_company_id,
            psa_product_id=card.psa_product_id,
            day=day,
            vendor_count=used,
            billed=billed,
        )
        for card in cards
        for day, used, billed in invented_points(card, today)
    ]
    CountHistory.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def describe(organization) -> str:
    from integrations.models import VendorAccount
    from psa.models import BillingLine, PSACompany
    from reconcile.mapping.models import AccountMapping
    from reconcile.review.models import CountHistory, SeatDiscrepancy

    org = {"organization": organization}
    kinds = collections.Counter(
        SeatDiscrepancy.objects.filter(**org).values_list("kind", flat=True)
    )
    return (
        f"{VendorAccount.objects.filter(**org).count():,} KnowBe4 customer accounts "
        f"({AccountMapping.objects.filter(**org, state='mapped').count():,} mapped), "
        f"{PSACompany.objects.filter(**org).count():,} PSA companies, "
        f"{BillingLine.objects.filter(**org).count():,} billing lines, "
        f"{sum(kinds.values()):,} cards ("
        + ", ".join(f"{n:,} {kind.replace('_', ' ')}" for kind, n in sorted(kinds.items()))
        + f"), {CountHistory.objects.filter(**org).count():,} count-history points"
    )


# --- the pages ----------------------------------------------------------------------------------


def pages(organization) -> list[tuple[str, str, list[str]]]:
    """(label, path, texts the answer must contain) for every page the clients fetch."""
    from integrations.models import VendorAccount

    accounts = VendorAccount.objects.filter(organization=organization, missing_since=None)
    first_unmapped = accounts.filter(mapping__isnull=True).order_by("name", "id").first()
    first_mapped = accounts.filter(mapping__state="mapped").order_by("name", "id").first()
    review = ["<h1>Review</h1>", 'data-testid="review-summary"']
    return [
        ("dashboard", "/", [html.escape(organization.name), "Under-billed"]),
        ("review", "/review/", review),
        ("review ?sort=delta", "/review/?sort=delta", review),
        ("review ?kind=all&view=table", "/review/?kind=all&view=table", [*review, "<table"]),
        ("review ?q=dental", "/review/?q=dental", review),
        ("review ?page=5", "/review/?page=5", [*review, "Page 5 of"]),
        (
            "mapping accounts",
            "/mapping/accounts/",
            ["Account mapping", html.escape(first_unmapped.name)],
        ),
        (
            "mapping accounts ?filter=mapped",
            "/mapping/accounts/?filter=mapped",
            ["Account mapping", html.escape(first_mapped.name)],
        ),
        ("mapping services", "/mapping/services/", ["Service mapping"]),
    ]


def queries_per_page(user, page_list) -> dict[str, tuple[int, float]]:
    """SQL queries of one request and median wall ms of five, per page, unloaded, in this
    process (Django's test client: no HTTP, no gunicorn)."""
    client = Client()
    client.force_login(user)
    found = {}
    for label, path, _ in page_list:
        client.get(path)  # templates compiled, caches warm
        walls = []
        for _ in range(5):
            started = time.perf_counter()
            response = client.get(path)
            walls.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        with CaptureQueriesContext(connection) as queries:
            client.get(path)
        found[label] = (len(queries), statistics.median(walls))
    return found


def cpu_ticks() -> dict:
    """CPU clock ticks (user + system) so far: of the whole machine ("busy"), and of each
    process tree this bench started, by kind, with this process as the clients: the
    sandboxes, gunicorn, the worker and the throwaway PostgreSQL (its postmaster and
    backends, found by the port; it runs under scripts/with-postgres.sh, outside this tree).
    A tree counts its live processes and the children they reaped (a backend whose
    connection closed)."""
    processes = {}  # pid -> (ppid, own ticks, reaped children's ticks, command)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        own, reaped = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
        processes[int(entry)] = (int(fields[1]), own, reaped, command)
    children = collections.defaultdict(list)
    for pid, (ppid, *_) in processes.items():
        children[ppid].append(pid)

    def tree(pid):
        yield pid
        for child in children[pid]:
            yield from tree(child)

    roots = {"clients (this process)": [os.getpid()]}
    for pid in children[os.getpid()]:
        command = processes[pid][3]
        kind = (
            "web (gunicorn)"
            if "gunicorn" in command
            else "worker (qcluster)"
            if "qcluster" in command
            else "sandboxes"
        )
        roots.setdefault(kind, []).append(pid)
    port = f"-p {connection.settings_dict['PORT']} "
    roots["PostgreSQL"] = [
        pid for pid, (*_, command) in processes.items() if "postgres" in command and port in command
    ]
    ticks = {"clients (this process)": processes[os.getpid()][1]}
    for kind, pids in roots.items():
        if kind != "clients (this process)":
            ticks[kind] = sum(sum(processes[p][1:3]) for root in pids for p in tree(root))
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    ticks["busy"] = sum(values) - values[3] - values[4]  # all but idle and iowait
    return ticks


def cpu_used(before, after) -> dict[str, float]:
    """CPU seconds between two cpu_ticks(): per kind of process of this bench, and the rest of
    the machine's busy time (other people's processes, the kernel) as "everything else"."""
    per_second = os.sysconf("SC_CLK_TCK")
    used = {kind: (after[kind] - before.get(kind, 0)) / per_second for kind in after}
    busy = used.pop("busy")
    used["everything else on the machine"] = max(0.0, busy - sum(used.values()))
    return used


# --- processes ----------------------------------------------------------------------------------


def start_sandbox(customers, lines, processes) -> str:
    """The sandboxes in their own process, as the real APIs are, with the bench partner at
    `customers` KnowBe4 accounts and `lines` PSA billing lines. KnowBe4 and the PSA run on
    other machines in production: here the process runs at a lower priority (nice 10), so
    standing in for them takes no CPU the pages would have had."""
    port = free_port()
    processes.append(
        subprocess.Popen(
            [
                "nice",
                "-n",
                "10",
                sys.executable,
                "-c",
                SANDBOX,
                str(customers),
                str(lines),
                str(port),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(base_url + "/_sandbox/knowbe4/keys").raise_for_status()
            return base_url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the sandboxes did not start")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def start_servers(options, base_url, processes) -> str:
    env = os.environ | {
        "DATABASE_URL": database_url(),
        "KNOWBE4_GRAPHQL_URL_US": f"{base_url}/knowbe4/us/graphql",
        "TRUEUP_WORKERS": "2",
    }
    port = free_port()
    web_log = open(WORK / "gunicorn.log", "w")  # noqa: SIM115 - closed with the process
    processes.append(
        subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "reconcile.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(options.web_workers),
                *(
                    ["--worker-class", "gthread", "--threads", str(options.web_threads)]
                    if options.web_threads > 1
                    else ["--worker-class", "sync"]
                ),
                "--backlog",
                "256",
            ],
            cwd=ROOT,
            env=env,
            stdout=web_log,
            stderr=subprocess.STDOUT,
        )
    )
    worker_log = open(WORK / "worker.log", "w")  # noqa: SIM115 - closed with the process
    processes.append(
        subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
    )
    web_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(web_url + "/healthz").status_code == 200:
                return web_url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not start:\n" + (WORK / "gunicorn.log").read_text()[-3000:])


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the clients --------------------------------------------------------------------------------


def signed_in_client(web_url) -> httpx.Client:
    client = httpx.Client(base_url=web_url, timeout=30)
    client.get("/login/").raise_for_status()
    response = client.post(
        "/login/",
        data={
            "username": EMAIL,
            "password": PASSWORD,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
    )
    if response.status_code != 302 or response.headers["location"] != "/":
        raise RuntimeError(f"sign-in failed: {response.status_code} {response.text[:300]}")
    return client


def check_pages(web_url, page_list) -> dict[str, str]:
    """Each page answers 200 with its texts; returns the card count each review page shows."""
    client, shown = signed_in_client(web_url), {}
    try:
        for label, path, texts in page_list:
            response = client.get(path)
            missing = [t for t in texts if t not in response.text]
            if response.status_code != 200 or missing:
                raise RuntimeError(
                    f"{label} ({path}): {response.status_code}, missing {missing}:\n"
                    + response.text[:2000]
                )
            if found := re.search(r"<strong>(\d+)</strong> cards?", response.text):
                shown[label] = found.group(1)
    finally:
        client.close()
    return shown


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = collections.defaultdict(list)  # label -> seconds
        self.finished = []  # (perf_counter at the end, seconds) of every request
        self.errors = collections.Counter()
        self.error_samples = []
        self.bytes = collections.Counter()


def client_loop(index, web_url, page_list, start, stop_at, think, results, failures):
    try:
        client = signed_in_client(web_url)
    except Exception as error:  # counted: a client that cannot sign in is an error
        failures.append(f"client {index}: {error!r}")
        start.wait()
        return
    latencies = collections.defaultdict(list)
    errors, sizes, samples, finished = collections.Counter(), collections.Counter(), [], []
    order = page_list[index % len(page_list) :] + page_list[: index % len(page_list)]
    pauses = random.Random(index)
    try:
        try:
            for _, path, _ in order:  # warm-up round, not measured
                client.get(path)
        except httpx.HTTPError as error:
            failures.append(f"client {index} warming up: {error!r}")
        start.wait()
        i = 0
        while time.perf_counter() < stop_at[0]:
            label, path, _ = order[i % len(order)]
            i += 1
            began = time.perf_counter()
            try:
                response = client.get(path)
                status = response.status_code
                sizes[label] += len(response.content)
            except httpx.HTTPError as error:
                status = repr(error)
            ended = time.perf_counter()
            latencies[label].append(ended - began)
            finished.append((ended, ended - began))
            if not (isinstance(status, int) and 200 <= status < 300):
                errors[label] += 1
                if len(samples) < 5:
                    samples.append(f"{path}: {status}")
            if think:
                pause = pauses.expovariate(1 / think)
                time.sleep(min(pause, max(0.0, stop_at[0] - time.perf_counter())))
    finally:
        client.close()
    with results.lock:
        for label, values in latencies.items():
            results.latencies[label].extend(values)
        results.finished.extend(finished)
        results.errors.update(errors)
        results.bytes.update(sizes)
        results.error_samples.extend(samples)


def background_work(organization, user, vendor, push_ids, load_started, timeline):
    """While the clients run: a KnowBe4 sync (2 s in), then a push batch (4 s in)."""
    from reconcile.review import push
    from reconcile.review import services as review
    from reconcile.review.models import PushItem
    from reconcile.sync import services as sync_services

    time.sleep(max(0.0, load_started + 2 - time.perf_counter()))
    run = sync_services.queue_sync(vendor, trigger="manual", actor=user)
    timeline["sync queued"] = time.perf_counter() - load_started
    timeline["sync_run"] = run.pk
    time.sleep(max(0.0, load_started + 4 - time.perf_counter()))
    review.approve(organization, user, push_ids)
    batch = push.test_mode(organization, user)
    timeline["planned"] = batch.items.filter(state=PushItem.State.PLANNED).count()
    timeline["blocked"] = batch.items.filter(state=PushItem.State.BLOCKED).count()
    timeline["queued"] = push.confirm(batch, user)
    timeline["push confirmed"] = time.perf_counter() - load_started
    timeline["batch"] = batch.pk
    connection.close()


def wait_for_background(timeline, load_started, limit) -> tuple[str, str, bool]:
    """Poll the sync run and the push batch until both ended (at most `limit` seconds)."""
    from reconcile.review.models import PushBatch, PushItem
    from reconcile.sync.models import SyncRun

    deadline = time.monotonic() + limit
    while True:
        run = SyncRun.objects.get(pk=timeline["sync_run"])
        batch = PushBatch.objects.get(pk=timeline["batch"])
        done = run.state not in SyncRun.ACTIVE_STATES and batch.state in ("finished", "cancelled")
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    def at(moment):
        return f"+{(moment - timeline['wall start']).total_seconds():.1f} s" if moment else "–"

    sync = (
        f"KnowBe4 sync run {run.pk}: {run.state}; queued {at(run.queued_at)}, started "
        f"{at(run.started_at)}, finished {at(run.finished_at)}; {run.progress_done} pages, "
        f"{run.added} added, {run.updated} updated, {run.unchanged} unchanged, "
        f"{run.removed} removed" + (f"; error: {run.error_message}" if run.error_message else "")
    )
    outcomes = collections.Counter(batch.items.values_list("state", flat=True))
    last = batch.items.order_by("-updated_at").values_list("updated_at", flat=True).first()
    push_line = (
        f"push batch {batch.pk}: {batch.state}; {timeline['planned']} planned, "
        f"{timeline['blocked']} blocked in Test Mode, {timeline['queued']} queued; confirmed "
        f"{at(batch.confirmed_at)}, last line settled {at(last)}, finished "
        f"{at(batch.finished_at)}; "
        + ", ".join(f"{n} {state}" for state, n in sorted(outcomes.items()))
    )
    ok = (
        run.state == SyncRun.State.SUCCEEDED
        and batch.state == PushBatch.State.FINISHED
        and outcomes.get(PushItem.State.CONFIRMED, 0) == timeline["queued"]
    )
    return sync, push_line, ok


# --- figures ------------------------------------------------------------------------------------


def hardware() -> str:
    cpu = platform.processor() or "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        kib = next(int(line.split()[1]) for line in info if line.startswith("MemTotal"))
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    cores = len(os.sched_getaffinity(0))
    return (
        f"{cores} cores ({cpu}), {kib / 1024 / 1024:.1f} GiB RAM, PostgreSQL {postgres}, "
        f"Python {platform.python_version()}, Linux {platform.release()}"
    )


def percentile_row(label, values, errors, size, seconds, sql, alone) -> tuple[str, float]:
    ms = sorted(v * 1000 for v in values)
    if len(ms) >= 2:
        cuts = statistics.quantiles(ms, n=100, method="inclusive")
        p50, p95, p99 = cuts[49], cuts[94], cuts[98]
    else:
        p50 = p95 = p99 = ms[0] if ms else float("nan")
    kib = size / len(ms) / 1024 if ms else 0
    row = (
        f"| {label} | {len(ms)} | {len(ms) / seconds:.1f} | {p50:.0f} | {p95:.0f} | {p99:.0f} "
        f"| {ms[-1] if ms else float('nan'):.0f} | {errors} | {kib:.0f} | {sql} | {alone} |"
    )
    return row, p95


def web_model(options) -> str:
    if options.web_threads > 1:
        return f"{options.web_workers} gthread processes x {options.web_threads} threads"
    return f"{options.web_workers} sync processes"


def windows(finished, started, seconds, width=5) -> str:
    """Throughput and p95 of the requests that ended in each whole `width`-second window."""
    parts = []
    for start in range(0, int(seconds) - width + 1, width):
        ms = sorted(
            latency * 1000
            for ended, latency in finished
            if start <= ended - started < start + width
        )
        if len(ms) >= 2:
            p95 = statistics.quantiles(ms, n=100, method="inclusive")[94]
            parts.append(f"{start}-{start + width} s: {len(ms) / width:.1f}/s, {p95:.0f}")
    return "; ".join(parts)


def run_all(options, base_url, processes) -> bool:
    print(f"hardware: {hardware()}", flush=True)
    print(f"load average before the build: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    user, organization, vendor, push_ids, drifted, history, took = build(base_url, options)
    print(f"organization: {describe(organization)}")
    print(
        f"built in {took:.0f} s (real imports of the {PARTNER!r} sandbox partner); "
        f"{drifted} accounts drifted for the sync, {len(push_ids)} cards chosen to push",
        flush=True,
    )
    call_command("collectstatic", interactive=False, verbosity=0)
    page_list = pages(organization)
    sql = queries_per_page(user, page_list)
    connection.close()  # the clients' threads and the servers get their own connections

    web_url = start_servers(options, base_url, processes)
    shown = check_pages(web_url, page_list)
    print("cards the review pages select: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    print(
        f"gunicorn: {web_model(options)}; "
        f"worker: qcluster, 2 processes; {options.clients} clients, "
        + (f"pauses of {options.think:g} s on average, " if options.think else "no pause, ")
        + f"{options.duration:.0f} s",
        flush=True,
    )

    results, failures, timeline = Results(), [], {}
    start = threading.Barrier(options.clients + 1)
    stop_at = [float("inf")]
    threads = [
        threading.Thread(
            target=client_loop,
            args=(i, web_url, page_list, start, stop_at, options.think, results, failures),
        )
        for i in range(options.clients)
    ]
    for thread in threads:
        thread.start()
    start.wait()  # every client signed in and warmed up
    if options.rtt:  # the sync and the push of the load talk to a cloud as far as a real one
        latency.set_delay(base_url, "knowbe4_partner", options.rtt, partner_by_slug(PARTNER).key)
        latency.set_delay(base_url, "connectwise", options.rtt)
    ticks = cpu_ticks()
    load_started = time.perf_counter()
    timeline["wall start"] = timezone.now()
    stop_at[0] = load_started + options.duration
    worker = threading.Thread(
        target=background_work,
        args=(organization, user, vendor, push_ids, load_started, timeline),
    )
    worker.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - load_started
    cpu = cpu_used(ticks, cpu_ticks())
    worker.join()
    sync_line, push_line, background_ok = wait_for_background(
        timeline, load_started, limit=max(180, options.duration * 3)
    )

    print()
    print(
        "| page | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | KiB "
        "| SQL queries | alone ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    worst = 0.0
    for label, _, _ in page_list:
        row, p95 = percentile_row(
            label,
            results.latencies[label],
            results.errors[label],
            results.bytes[label],
            seconds,
            sql[label][0],
            f"{sql[label][1]:.0f}",
        )
        worst = max(worst, p95)
        print(row)
    everything = [v for values in results.latencies.values() for v in values]
    errors = sum(results.errors.values()) + len(failures)
    row, overall_p95 = percentile_row(
        "**all pages**", everything, errors, sum(results.bytes.values()), seconds, "–", "–"
    )
    print(row)
    print()
    print(
        "SQL queries: of one request; alone ms: median of five requests with nothing else "
        "running, in this process (no HTTP)"
    )
    print(
        f"CPU seconds used during the {seconds:.0f} s ({len(os.sched_getaffinity(0))} cores: "
        f"{seconds * len(os.sched_getaffinity(0)):.0f} available): "
        + ", ".join(
            f"{name} {value:.0f}" for name, value in sorted(cpu.items(), key=lambda kv: -kv[1])
        )
    )
    print(sync_line)
    print(push_line)
    print("by 5 s window (requests/s, p95 ms): " + windows(results.finished, load_started, seconds))
    for line in failures + results.error_samples:
        print(f"error: {line}")
    print()
    p95_ok, errors_ok = worst < GOAL_P95_MS, errors == 0
    print(
        f"goal: p95 < {GOAL_P95_MS} ms on every page: {'met' if p95_ok else 'MISSED'} "
        f"(worst page {worst:.0f} ms, all pages {overall_p95:.0f} ms); zero errors: "
        f"{'met' if errors_ok else 'MISSED'} ({errors}); sync and push succeeded: "
        f"{'yes' if background_ok else 'NO'}"
    )
    if not (errors_ok and background_ok):
        tail = (WORK / "gunicorn.log").read_text()[-2000:]
        print(f"gunicorn log, last lines:\n{tail}")
    return p95_ok and errors_ok and background_ok


if __name__ == "__main__":
    main()
