"""Malformed answers in the middle of an import (issue 8, point 5): every run ends *failed* with
a readable error, never a crash of the worker, never a partial overwrite of the last good import.

Each test imports a connection once from its sandbox (the good data), then switches the
sandboxes' `mangle` fault on for one request in the middle of the next import (a second page,
so the first page was fine) and runs that import through the real pipeline
(`sync.services.queue_sync` + `run_sync`). The request numbers follow each import's order of
requests, below (`TARGETS`); the run log proves the page before the spoiled one was read.

Null names: a company, product or account whose name is null (or empty) fails the run, naming the
record (its id) and the PSA or vendor, rather than being imported under a placeholder or skipped.
Names drive mapping (a vendor account is matched to a PSA company by name) and a finance user
reads the review by them; a placeholder would silently rename a customer that was fine
yesterday, and a skipped company would be marked "no longer listed" with its lines losing their
customer. The PSA or vendor is where the name has to be fixed, and the message says which record.

10 MB answers are parsed (reconcile.core.http refuses only answers over `MAX_ANSWER_BYTES`, 32 MB:
a real page of 1,000 full ConnectWise companies is a few MB), and fail the run because a
10 MB name is no name (TrueUp stores names of at most 300 characters); an answer over the cap
is refused while it streams in, with "answer too large" (the last tests).
"""

import datetime
import hashlib
import json
from dataclasses import dataclass

import httpx
import pytest
from starlette.responses import JSONResponse

from integrations.models import (
    StagedAccount,
    StagedUsage,
    UsageSnapshot,
    VendorAccount,
    VendorConnection,
    VendorService,
)
from integrations.providers.knowbe4_partner.adapter import to_int
from psa.models import BillingContainer, BillingLine, PSACompany, PSAConnection, PSAProduct
from psa.providers import PROVIDERS
from psa.providers.autotask import adapter as autotask
from psa.providers.base import ContainerRecord
from psa.providers.connectwise import adapter as connectwise
from psa.providers.halo import adapter as halo
from reconcile.core import http
from reconcile.core.connections import PollingInterval
from reconcile.core.errors import AnswerTooLarge, BadAnswer, Unreachable
from reconcile.sync import services, tasks
from reconcile.sync import services as lifecycle
from reconcile.sync.models import SyncRun
from sandboxes.demo import psa_connection_fields
from sandboxes.ratelimit import HUGE_BYTES, MANGLES, mangle_json, mangle_response

pytestmark = pytest.mark.django_db

# How each provider's errors name it; a new PSA provider joins the suite under its label.
NAMES = {"connectwise": "ConnectWise", "autotask": "Autotask", "halo": "Halo"}
VENDOR_NAMES = {
    "knowbe4_partner": "KnowBe4",
    "knowbe4_reporting": "KnowBe4",
    **{kind: NAMES.get(kind, PROVIDERS[kind].label) for kind in PROVIDERS.kinds()},
}
PAGE_SIZE = 50  # several pages of companies (173) and of KnowBe4 accounts (160)


@dataclass(frozen=True)
class Target:
    """Which request of an import to spoil (1 = its first request), and the log line that
    shows the page before it was read."""

    request: int
    page_before: str | None


# The requests of one import, in order:
# - KnowBe4 partner: schema introspection, accounts page 1, page 2, ...
# - KnowBe4 Reporting: /v1/account, /v1/users page 1, page 2 (a tenant of 600 active users);
#   null and huge names can only be in /v1/account.
# - ConnectWise (codebase stored at connect): companies page 1, page 2, ...
# - Autotask (zone stored at connect): the count of customer companies, companies page 1, 2, ...
# - Halo: a token, clients page 1, page 2, ...
# - any other PSA: companies page 1, page 2, ...
TARGETS = {
    "knowbe4_partner": {None: Target(3, "Fetched accounts page 1 of 4")},
    "knowbe4_reporting": {
        None: Target(3, None),
        "null_names": Target(1, None),
        "huge": Target(1, None),
    },
    "connectwise": {None: Target(2, "Fetched companies page 1")},
    "autotask": {None: Target(3, "Fetched companies page 1")},
    "halo": {None: Target(3, "Fetched companies page 1")},
}


def target(kind: str, mangle: str) -> Target:
    targets = TARGETS.get(kind, {None: Target(2, "Fetched companies page 1")})
    return targets.get(mangle) or targets[None]


class Connected:
    """A connection of one kind, imported once, and its sandbox's switches."""

    def __init__(self, kind: str, sandbox, organization, owner, settings):
        self.kind, self.sandbox = kind, sandbox
        settings.KNOWBE4_PAGE_SIZE = PAGE_SIZE
        if kind == "knowbe4_partner":
            self.key = sandbox.demo_key
            self.connection = lifecycle.connect(
                VendorConnection,
                organization,
                owner,
                kind=kind,
                settings={
                    "region": "us",
                    "base_url": sandbox.graphql_url("us"),
                    "api_schema": "2023",
                },
                secrets={"api_key": self.key},
            )
        elif kind == "knowbe4_reporting":
            response = httpx.post(
                f"{sandbox.base_url}/_sandbox/knowbe4/reporting-keys",
                json={"active_users": 600, "archived_users": 5, "name": "Malformed Tenant"},
                timeout=60,
            )
            response.raise_for_status()
            tenant = response.json()
            self.key = tenant["key"]
            # The API's 4 a second would only slow the two imports down here.
            sandbox.set_key(self.key, rate_limit_per_second=None, rate_limit_per_minute=None)
            self.connection = lifecycle.connect(
                VendorConnection,
                organization,
                owner,
                kind="knowbe4_reporting",
                settings={"region": "us", "base_url": tenant["base_url"]},
                secrets={"api_key": self.key},
                account_name="Malformed Tenant",
                polling_interval=PollingInterval.DAILY,
            )
        else:
            base_settings, secrets = psa_connection_fields(kind, sandbox.base_url)
            base_settings["page_size"] = PAGE_SIZE
            # One request at a time, so "the Nth request" is always the same page here; what
            # requests sent at once do on a failure is tests/psa/test_concurrent_fetching.py's.
            base_settings["concurrency"] = 1
            check = PROVIDERS[kind].adapter_class(settings=base_settings, secrets=secrets).test()
            self.connection = lifecycle.connect(
                PSAConnection,
                organization,
                owner,
                kind=kind,
                settings=base_settings | check.settings,
                secrets=secrets,
            )
        before = self.requests()
        run = sync(self.connection)
        assert run.state == SyncRun.State.SUCCEEDED, run.error_message
        self.import_requests = self.requests() - before  # the next import sends as many

    @property
    def is_psa(self) -> bool:
        return self.connection.side == "psa"

    def requests(self) -> int:
        if self.is_psa:
            return httpx.get(f"{self.sandbox.base_url}/_sandbox/{self.kind}/state").json()[
                "requests"
            ]
        return self.sandbox.key_state(self.key)["request_count"]

    def mangle(self, kind: str, requests: list[int]) -> None:
        switch = {"mangle": kind, "mangle_on_requests": requests}
        if self.is_psa:
            url = f"{self.sandbox.base_url}/_sandbox/{self.kind}/faults"
            httpx.post(url, json=switch).raise_for_status()
        else:
            self.sandbox.set_key(self.key, **switch)

    def rows(self) -> tuple[dict, str]:
        """How many rows of each imported table, and a checksum of their key fields (with
        `last_seen_at`, which any import that stored something would have moved)."""
        seen = ("last_seen_at", "missing_since")
        if self.is_psa:
            tables = {
                PSACompany: ("external_id", "name", "identifier", "active", *seen),
                PSAProduct: ("external_id", "identifier", "name", "unit_price", "active", *seen),
                BillingContainer: ("external_id", "company_id", "name", "status", *seen),
                BillingLine: (
                    "external_id",
                    "container_id",
                    "company_id",
                    "product_id",
                    "description",
                    "quantity",
                    "unit_price",
                    *seen,
                ),
            }
        else:
            tables = {
                VendorAccount: (
                    "external_id",
                    "name",
                    "status",
                    "seats_purchased",
                    "active_users",
                    "excluded_users",
                    "subscription_level",
                    *seen,
                ),
                VendorService: ("code", "name", "last_seen_at"),
                UsageSnapshot: (
                    "account__external_id",
                    "service__code",
                    "active_users",
                    "seats",
                    "is_current",
                    "taken_at",
                ),
            }
        counts, digest = {}, hashlib.sha256()
        for model, fields in tables.items():
            where = {
                "account__connection" if model is UsageSnapshot else "connection": self.connection
            }
            values = list(model.objects.filter(**where).values_list(*fields))
            counts[model.__name__] = len(values)
            digest.update(repr(sorted(values, key=repr)).encode())
        return counts, digest.hexdigest()


def sync(connection) -> SyncRun:
    run = services.queue_sync(connection, trigger=SyncRun.Trigger.MANUAL)
    return services.run_sync(run.pk)


@pytest.fixture(params=list(VENDOR_NAMES))
def connected(request, sandbox, organization, owner, settings):
    return Connected(request.param, sandbox, organization, owner, settings)


def assert_failed_readably(run: SyncRun, connection, vendor: str) -> None:
    assert run.state == SyncRun.State.FAILED, (run.state, run.error_message)
    message = run.error_message
    assert "Unexpected error" not in message, message  # what a crash of the import says
    assert "Traceback" not in message and 'File "' not in message
    assert vendor in message, message
    assert 20 < len(message) < 600, message
    assert run.log[-1] == {**run.log[-1], "level": "error", "message": message}
    connection.refresh_from_db()
    assert connection.state == connection.State.ERROR
    assert connection.last_error == message


@pytest.mark.parametrize("mangle", MANGLES)
def test_a_malformed_answer_fails_the_run_readably_and_keeps_the_last_import(connected, mangle):
    before = connected.rows()
    assert all(before[0].values()), before  # there is good data to keep
    spoiled, start = target(connected.kind, mangle), connected.requests()
    connected.mangle(mangle, [start + spoiled.request])

    run = sync(connected.connection)

    assert_failed_readably(run, connected.connection, VENDOR_NAMES[connected.kind])
    if spoiled.page_before:
        assert any(spoiled.page_before in line["message"] for line in run.log), run.log
    if mangle == "null_names":
        assert "no name" in run.error_message
    assert connected.rows() == before
    assert not StagedAccount.objects.filter(sync_run_id=run.pk).exists()
    assert not StagedUsage.objects.filter(sync_run_id=run.pk).exists()
    assert connected.requests() >= start + spoiled.request  # the spoiled request was sent


@pytest.mark.parametrize("mangle", ["wrong_types", "missing_fields"])
def test_a_malformed_last_answer_fails_the_import_too(connected, mangle):
    """The last request of an import reads seat lines (ConnectWise additions, Autotask units,
    Halo recurring invoices) or the last page of accounts or users."""
    before = connected.rows()
    connected.mangle(mangle, [connected.requests() + connected.import_requests])

    run = sync(connected.connection)

    assert_failed_readably(run, connected.connection, VENDOR_NAMES[connected.kind])
    assert connected.rows() == before


@pytest.mark.parametrize("mangle", ["truncate", "html", "missing_fields", "null_names"])
def test_a_malformed_schema_answer_fails_the_knowbe4_import(
    sandbox, organization, owner, settings, mangle
):
    """A KnowBe4 session starts with the client's schema introspection, the answer gql builds
    its schema from (it holds no numbers, so "wrong_types" leaves it as it is)."""
    connected = Connected("knowbe4_partner", sandbox, organization, owner, settings)
    before = connected.rows()
    connected.mangle(mangle, [connected.requests() + 1])

    run = sync(connected.connection)

    assert_failed_readably(run, connected.connection, "KnowBe4")
    assert connected.rows() == before


@pytest.mark.parametrize("kind", ["connectwise"])
def test_the_worker_entry_point_returns_failed(sandbox, organization, owner, settings, kind):
    connected = Connected(kind, sandbox, organization, owner, settings)
    before = connected.rows()
    connected.mangle("wrong_types", [connected.requests() + target(kind, "wrong_types").request])
    run = services.queue_sync(connected.connection, trigger=SyncRun.Trigger.SCHEDULE)

    assert tasks.sync_connection(run.pk) == "failed"

    run.refresh_from_db()
    assert_failed_readably(run, connected.connection, "ConnectWise")
    assert connected.rows() == before


@pytest.mark.parametrize("kind", ["knowbe4_partner", "connectwise"])
def test_an_answer_over_the_size_cap_is_refused_as_too_large(
    sandbox, organization, owner, settings, monkeypatch, kind
):
    connected = Connected(kind, sandbox, organization, owner, settings)
    before = connected.rows()
    monkeypatch.setattr(http, "MAX_ANSWER_BYTES", 1024 * 1024)
    connected.mangle("huge", [connected.requests() + target(kind, "huge").request])

    run = sync(connected.connection)

    assert_failed_readably(run, connected.connection, VENDOR_NAMES[kind])
    assert "too large" in run.error_message
    assert connected.rows() == before


def test_an_answer_without_a_length_is_cut_off_while_it_streams_in(monkeypatch):
    """No Content-Length (chunked): reading stops as soon as the cap is passed."""
    monkeypatch.setattr(http, "MAX_ANSWER_BYTES", 1000)
    read = []

    def endless():
        while len(read) < 10_000:
            read.append(1)
            yield b"x" * 100

    answer = http.BoundedTransport(
        httpx.MockTransport(lambda request: httpx.Response(200, content=endless())), "Halo"
    )
    with httpx.Client(transport=answer) as client, pytest.raises(AnswerTooLarge) as refused:
        client.get("https://halo.example/api/Client")
    assert len(read) == 11
    assert str(refused.value).startswith("Halo at halo.example sent an answer too large")


def test_an_answer_that_does_not_decode_is_a_readable_unreachable():
    """A body that is not what its Content-Encoding says (a proxy's mangling) is put into
    words like every other failure to get an answer, never an httpx traceback."""
    api = http.OutsideAPI(location="syncro.example")
    api.name = "Syncro"
    gzip = {"Content-Encoding": "gzip"}
    broken = httpx.Response(200, headers=gzip, stream=httpx.ByteStream(b"not gzip"))
    api._clients[False] = httpx.Client(transport=httpx.MockTransport(lambda request: broken))
    with pytest.raises(Unreachable) as failed:
        api.send("GET", "https://syncro.example/api/v1/customers")
    assert str(failed.value).startswith(
        "Could not read the answer of Syncro at syncro.example: its body could not be decoded"
    )
    assert api.requests == 1


def test_the_next_good_import_succeeds_after_a_malformed_one(
    sandbox, organization, owner, settings
):
    connected = Connected("halo", sandbox, organization, owner, settings)
    connected.mangle("truncate", [connected.requests() + target("halo", "truncate").request])
    assert sync(connected.connection).state == SyncRun.State.FAILED
    run = sync(connected.connection)
    assert run.state == SyncRun.State.SUCCEEDED, run.error_message
    connected.connection.refresh_from_db()
    assert connected.connection.state == connected.connection.State.ACTIVE


# --- the switch itself ---------------------------------------------------------------------------


def test_the_switch_spoils_only_the_listed_requests_and_is_validated(sandbox):
    base, kind = f"{sandbox.base_url}/_sandbox/connectwise", "connectwise"
    site_settings, secrets = psa_connection_fields(kind, sandbox.base_url)
    client = PROVIDERS[kind].adapter_class(settings=site_settings, secrets=secrets)
    client.test()  # codebase lookup (1) and the company count (2)
    httpx.post(f"{base}/faults", json={"mangle": "wrong_types", "mangle_on_requests": [4]})
    api = client._session()
    good = api.get_json("company/companies", {"pageSize": 2})  # request 3
    spoiled = api.get_json("company/companies", {"pageSize": 2})  # request 4
    again = api.get_json("company/companies", {"pageSize": 2})  # request 5
    assert good == again and isinstance(good[0]["id"], int)
    assert spoiled[0]["id"] == {"x": good[0]["id"]} and spoiled[0]["name"] == good[0]["name"]
    client.close()

    assert httpx.post(f"{base}/faults", json={"mangle": "gzip"}).status_code == 400
    assert httpx.post(f"{base}/faults", json={"mangle_on_requests": [0]}).status_code == 400
    assert httpx.post(f"{base}/faults", json={"mangle_on_requests": 3}).status_code == 400
    key = f"{sandbox.base_url}/_sandbox/knowbe4/keys/{sandbox.demo_key}"
    assert httpx.post(key, json={"mangle": "gzip"}).status_code == 400
    assert httpx.post(key, json={"mangle_on_requests": [True]}).status_code == 400


def test_each_kind_spoils_an_answer_as_documented():
    body = {"id": 7, "name": "Acme", "count": 2, "flag": True, "lines": [{"qty_order": 1.5}]}
    assert mangle_json(body, "wrong_types") == {
        "id": {"x": 7},
        "name": "Acme",
        "count": {"x": 2},
        "flag": True,
        "lines": [{"qty_order": {"x": 1.5}}],
    }
    assert mangle_json(body, "missing_fields") == {"flag": True, "lines": [{}]}
    assert mangle_json(body, "null_names")["name"] is None

    def spoil(kind, answer=body):
        return mangle_response(JSONResponse(answer, headers={"Link": "<x>"}), kind)

    truncated = spoil("truncate")
    assert truncated.body == JSONResponse(body).body[: len(truncated.body)]
    assert truncated.headers["content-length"] == str(len(truncated.body))
    assert truncated.headers["Link"] == "<x>"
    assert spoil("html").headers["content-type"].startswith("text/html")
    huge = spoil("huge")
    assert len(huge.body) > HUGE_BYTES and json.loads(huge.body)["name"].startswith("Huge x")
    assert len(json.loads(spoil("huge", {"count": 1}).body)["padding"]) == HUGE_BYTES
    assert json.loads(spoil("huge", [1, 2]).body) == [1, 2]  # 10 MB of trailing whitespace
    error = JSONResponse({"message": "no"}, status_code=404)
    assert mangle_response(error, "truncate") is error  # errors pass unchanged


# --- seat counts and quantities: never a silent 0 or "unknown" ----------------------------------
# The sandboxes' wrong_types and missing_fields also spoil ids, which are checked first; these
# records have good ids and a quantity that is not a number, or none.


@pytest.mark.parametrize("quantity", [{"x": 5}, [5], "five", "NaN", None])
def test_a_seat_line_without_a_usable_quantity_is_a_bad_answer(quantity):
    container = ContainerRecord(external_id="7", company_external_id="1", kind="agreement")
    addition = {"id": 11, "product": {"id": 3}} | (
        {} if quantity is None else {"quantity": quantity}
    )
    with pytest.raises(BadAnswer, match="ConnectWise"):
        connectwise._line(addition, container)

    line = {"id": 12, "_itemid": 3} | ({} if quantity is None else {"qty_order": quantity})
    with pytest.raises(BadAnswer, match="Halo"):
        halo._line(line, container)

    adapter = autotask.AutotaskAdapter(settings={"username": "u"}, secrets={})
    service = {"id": 13, "contractID": 7, "serviceID": 3}
    contract = {"id": 7, "companyID": 1, "status": autotask.ACTIVE}
    row = {"contractServiceID": 13} | ({} if quantity is None else {"units": quantity})
    with pytest.raises(BadAnswer, match="Autotask"):
        adapter._line(service, contract, row, datetime.date.today())


@pytest.mark.parametrize("count", [{"x": 5}, [5], True])
def test_a_knowbe4_count_that_is_no_number_is_a_bad_answer(count):
    with pytest.raises(BadAnswer, match="KnowBe4"):
        to_int(count)
