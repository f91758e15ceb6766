"""A PSA connection's request budget: the owner's setting on the connection page, and the
pacing it turns into, over real HTTP against the ConnectWise sandbox's rate limit."""

import threading
import time
from decimal import Decimal

import pytest
from django.urls import reverse

from psa import services
from psa.models import PSAConnection
from psa.providers.base import LineKey
from reconcile.core import http
from reconcile.sync import services as lifecycle
from reconcile.tenancy.models import AuditEvent, Role
from sandboxes import psa_data
from sandboxes.connectwise import CURRENT_CODEBASE
from sandboxes.demo import psa_connection_fields
from tests.conftest import login
from tests.factories import PSAConnectionFactory
from tests.psa.conftest import PSASandbox
from tests.psa.test_views import cw_form

pytestmark = pytest.mark.django_db
UNIVERSE = psa_data.universe("demo")
# Lines the demo partner's ConnectWise bills, as the adapter's read_line must see them.
LINES = [line for line in UNIVERSE.lines() if line.cancelled_date is None][:13]


# --- the setting ------------------------------------------------------------------------------


@pytest.fixture
def connection(organization):
    return PSAConnectionFactory(
        organization=organization, settings={"site": "http://127.0.0.1:9/connectwise"}
    )


def budget_url(connection):
    return reverse("psa:budget", args=[connection.pk])


def test_the_owner_sets_the_budget_and_it_is_audited(owner_client, connection):
    page = owner_client.get(reverse("psa:detail", args=[connection.pk])).content.decode()
    assert "default: not limited; TrueUp backs off when ConnectWise answers 429" in page
    response = owner_client.post(budget_url(connection), {"requests_per_minute": " 1200 "})
    assert response.status_code == 302
    assert response.url == reverse("psa:detail", args=[connection.pk])
    connection.refresh_from_db()
    assert connection.settings == {
        "site": "http://127.0.0.1:9/connectwise",
        "requests_per_minute": 1200,
    }
    assert connection.adapter().limiter is not None
    page = owner_client.get(response.url).content.decode()
    assert "at most 1,200" in page and "1,200 requests a minute" in page  # and the message
    event = AuditEvent.objects.get(action="psa.request_budget")
    assert (event.before, event.after) == (
        {"requests_per_minute": None, "concurrency": None},
        {"requests_per_minute": 1200, "concurrency": None},
    )
    assert event.object_id == str(connection.pk) and event.organization == connection.organization

    owner_client.post(budget_url(connection), {"requests_per_minute": ""})  # back to the default
    connection.refresh_from_db()
    assert "requests_per_minute" not in connection.settings
    assert connection.adapter().limiter is None  # ConnectWise: back-off only
    assert AuditEvent.objects.filter(action="psa.request_budget").count() == 2


def test_autotask_says_its_default(owner_client, organization):
    autotask = PSAConnectionFactory(organization=organization, kind="autotask", settings={})
    page = owner_client.get(reverse("psa:detail", args=[autotask.pk])).content.decode()
    assert "default: 5,000 an hour (half Autotask&#x27;s shared 10,000)" in page


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "greater than or equal to 1"),
        ("-60", "greater than or equal to 1"),
        ("100001", "less than or equal to 100000"),
        ("12.5", "Enter a whole number"),
        ("sixty", "Enter a whole number"),
        ("1e3", "Enter a whole number"),
        ("9" * 400, "less than or equal to 100000"),
    ],
)
def test_bad_input_is_a_form_error_and_changes_nothing(owner_client, connection, value, message):
    connection.settings["requests_per_minute"] = 600
    connection.save()
    response = owner_client.post(budget_url(connection), {"requests_per_minute": value})
    assert response.status_code == 400
    assert message in response.content.decode()
    connection.refresh_from_db()
    assert connection.settings["requests_per_minute"] == 600
    assert not AuditEvent.objects.filter(action="psa.request_budget").exists()


def test_the_largest_budget_is_accepted(owner_client, connection):
    owner_client.post(budget_url(connection), {"requests_per_minute": "100000"})
    connection.refresh_from_db()
    assert connection.settings["requests_per_minute"] == 100_000


def test_only_a_post_changes_it(owner_client, connection):
    assert owner_client.get(budget_url(connection)).status_code == 405


def test_an_outsider_gets_404(client, outsider, connection):
    login(client, outsider)
    assert client.post(budget_url(connection), {"requests_per_minute": "60"}).status_code == 404
    assert client.get(reverse("psa:detail", args=[connection.pk])).status_code == 404
    connection.refresh_from_db()
    assert "requests_per_minute" not in connection.settings


def test_a_viewer_sees_the_budget_but_gets_403_changing_it(client, member_factory, connection):
    connection.settings["requests_per_minute"] = 600
    connection.save()
    login(client, member_factory(Role.VIEWER))
    page = client.get(reverse("psa:detail", args=[connection.pk])).content.decode()
    assert "at most 600" in page and budget_url(connection) not in page
    assert client.post(budget_url(connection), {"requests_per_minute": "60"}).status_code == 403
    connection.refresh_from_db()
    assert connection.settings["requests_per_minute"] == 600


def test_rotating_the_credentials_keeps_the_budget(owner_client, organization, owner, sandbox):
    settings, secrets = psa_connection_fields("connectwise", sandbox.base_url)
    connection = lifecycle.connect(
        PSAConnection,
        organization,
        owner,
        kind="connectwise",
        settings=settings | {"requests_per_minute": 900},
        secrets=secrets,
    )
    response = owner_client.post(
        reverse("psa:rotate", args=[connection.pk]), cw_form(sandbox.base_url)
    )
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.settings["requests_per_minute"] == 900
    assert connection.settings["codebase"] == f"{CURRENT_CODEBASE}/"


# --- pacing against the sandbox's rate limit --------------------------------------------------


def test_a_budget_is_paced_by_the_second_with_a_second_of_slack_per_minute():
    def rates(requests):
        return [(rate.limit, rate.interval) for rate in http.per_minute(requests)]

    assert rates(600) == [(10, 1000), (600, 61_000)]
    assert rates(2000) == [(34, 1000), (2000, 61_000)]
    assert rates(30) == [(1, 2034)]  # under one a second: evenly spaced


def burst(adapter) -> list[Decimal]:
    """13 read_line calls: 26 requests (the agreement and the addition each)."""
    keys = [LineKey(container_id=str(line.container_id), line_id=str(line.id)) for line in LINES]
    return [adapter.read_line(key).quantity for key in keys]


def expected() -> list[Decimal]:
    return [Decimal(line.quantity) for line in LINES]


def test_a_paced_burst_is_spread_to_the_budget_and_never_answered_429(sandbox, organization, owner):
    cw = PSASandbox(sandbox.base_url, "connectwise")
    cw.faults(rate_limit_per_minute=600)
    settings, secrets = psa_connection_fields("connectwise", sandbox.base_url)
    connection = lifecycle.connect(
        PSAConnection,
        organization,
        owner,
        kind="connectwise",
        settings=settings | {"codebase": CURRENT_CODEBASE},
        secrets=secrets,
    )
    services.set_request_budget(connection, owner, 600, None)  # 10 a second
    adapter = PSAConnection.objects.get(pk=connection.pk).adapter()
    started = time.monotonic()
    try:
        assert burst(adapter) == expected()  # every request answered
    finally:
        adapter.close()
    elapsed = time.monotonic() - started
    state = cw.state()
    assert state["rate_limited"] == 0
    assert state["requests"] == 26  # nothing was retried
    # At most 10 in any second: the 21st request leaves 2 s after the first, or later.
    assert elapsed >= 1.9


def test_an_unpaced_burst_over_the_limit_is_answered_429_and_waits_it_out(sandbox, settings):
    """Without a budget the same burst meets a PSA that takes only 20 a minute: the 21st
    request is answered 429 with a Retry-After; the retry waits (capped here at 2 s), and by
    then the PSA's minute has moved on (the limit is lifted as soon as the 429 is counted)."""
    settings.TRUEUP_HTTP_MAX_RETRY_WAIT = 2
    cw = PSASandbox(sandbox.base_url, "connectwise")
    cw.faults(rate_limit_per_minute=20)

    def lift_after_first_429():
        deadline = time.monotonic() + 10
        while cw.state()["rate_limited"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        cw.faults(rate_limit_per_minute=None)

    lifter = threading.Thread(target=lift_after_first_429)
    lifter.start()
    adapter = cw.adapter(codebase=CURRENT_CODEBASE)
    assert adapter.limiter is None  # ConnectWise's default: no pacing
    try:
        assert burst(adapter) == expected()  # still every line answered
    finally:
        adapter.close()
        lifter.join()
    state = cw.state()
    assert state["rate_limited"] == 1
    assert state["requests"] == 27  # the 21st twice


def test_the_owner_sets_the_concurrency_and_it_is_audited(owner_client, connection):
    page = owner_client.get(reverse("psa:detail", args=[connection.pk])).content.decode()
    assert "default: 6" in page  # ConnectWise publishes no limit: a conservative 6
    response = owner_client.post(budget_url(connection), {"concurrency": "2"})
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.settings["concurrency"] == 2
    assert connection.adapter().concurrency == 2
    page = owner_client.get(response.url).content.decode()
    assert "2 requests at once" in page
    event = AuditEvent.objects.get(action="psa.request_budget")
    assert event.after == {"requests_per_minute": None, "concurrency": 2}


@pytest.mark.parametrize("value", ["0", "17", "two"])
def test_a_bad_concurrency_is_a_form_error(owner_client, connection, value):
    response = owner_client.post(budget_url(connection), {"concurrency": value})
    assert response.status_code == 400
    assert "Requests at once:" in response.content.decode()
    connection.refresh_from_db()
    assert "concurrency" not in connection.settings
