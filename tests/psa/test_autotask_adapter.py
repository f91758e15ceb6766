"""The Autotask adapter against the Autotask sandbox, over real HTTP, checked against the PSA
universe the sandbox serves (`sandboxes.psa_data`)."""

import datetime
import time
from decimal import Decimal

import httpx
import pytest

from psa.providers.autotask.adapter import AutotaskAdapter
from psa.providers.base import ContainerType, LineKey
from reconcile.core.errors import (
    CredentialRejected,
    RateLimited,
    ServerFault,
    Unreachable,
    WriteRejected,
)
from sandboxes import autotask, data, psa_data

DEMO = psa_data.universe(data.PARTNERS[data.DEMO_PARTNER_KEY].slug)
CONTAINERS = {c.id: c for c in DEMO.containers}


def today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def expected_units(line: psa_data.BillingLine) -> int:
    """The units Autotask bills today: none outside the contract's dates or once cancelled."""
    container = CONTAINERS[line.container_id]
    day = today()
    if not (container.start_date <= day <= container.end_date and line.effective_date <= day):
        return 0
    if line.cancelled_date and line.cancelled_date <= day:
        return 0
    return line.quantity


def line_requests(page_size: int, pages: int | None = None) -> int:
    """Requests to read the billing lines of the first `pages` pages of contracts: per page of
    contracts one for them, the pages of their services, the pages of their current units."""
    contracts = sorted(DEMO.containers, key=lambda c: c.id)
    chunks = [contracts[i : i + page_size] for i in range(0, len(contracts), page_size)]
    total = 0
    for chunk in chunks[:pages]:
        services = [line for c in chunk for line in c.lines]
        spanning = [
            line
            for line in services
            if CONTAINERS[line.container_id].start_date <= today()
            and today() <= CONTAINERS[line.container_id].end_date
            and line.effective_date <= today()
        ]
        total += 1 + max(1, -(-len(services) // page_size)) + max(1, -(-len(spanning) // page_size))
    return total


def writable_kb4_line() -> psa_data.BillingLine:
    kb4 = psa_data.kb4_products()
    return next(
        line
        for container in DEMO.containers
        if container.status == "Active"
        for line in container.lines
        if line.product_id in kb4 and expected_units(line) > 0
    )


def demo_zone_url(sandbox) -> str:
    return autotask.zone_url(sandbox.base_url, "demo")


def adapter(sandbox, *, discover=False, secrets=None, **settings) -> AutotaskAdapter:
    creds = autotask.demo_credentials(sandbox.base_url)
    return AutotaskAdapter(
        settings={
            "zone_lookup_url": creds["zone_lookup_url"],
            "zone_url": "" if discover else demo_zone_url(sandbox),
            "username": creds["username"],
            **settings,
        },
        secrets={
            "secret": creds["secret"],
            "integration_code": creds["integration_code"],
            **(secrets or {}),
        },
    )


def state(sandbox) -> dict:
    return httpx.get(f"{sandbox.base_url}/_sandbox/autotask/state").json()


def faults(sandbox, **changes) -> None:
    httpx.post(f"{sandbox.base_url}/_sandbox/autotask/faults", json=changes).raise_for_status()


def all_lines(at: AutotaskAdapter, types=()):
    return [line for page in at.iter_billing_lines(list(types)) for line in page.items]


def key_of(line) -> LineKey:
    return LineKey(line.container.external_id, line.external_id, line.raw)


# --- connecting --------------------------------------------------------------------------------


def test_test_discovers_the_zone_and_counts_customers(sandbox):
    check = adapter(sandbox, discover=True).test()
    customers = sum(1 for c in DEMO.companies if c.company_type == "Customer")
    assert customers == 155
    assert check.settings == {
        "zone_url": f"{sandbox.base_url}/autotask/webservices5/ATServicesRest/"
    }
    assert check.message == (
        f"Autotask accepted the API user {autotask.DEMO_CREDENTIALS['username']} "
        "(zone America West, 155 customer companies)."
    )
    assert check.latency_ms >= 0
    assert state(sandbox)["requests"] == 2  # the zone lookup and one count


def test_a_stored_zone_skips_the_lookup(sandbox):
    check = adapter(sandbox).test()
    assert check.settings == {}
    assert "155 customer companies" in check.message
    assert state(sandbox)["requests"] == 1


@pytest.mark.parametrize(
    "changes, secrets, error, message",
    [
        (
            {"username": "nobody@example.com"},
            {},
            CredentialRejected,
            "Autotask found no zone for user nobody@example.com",
        ),
        (
            {},
            {"secret": "wrong"},
            CredentialRejected,
            "Autotask rejected the API user or secret (HTTP 401)",
        ),
        (
            {},
            {"integration_code": "WRONG"},
            CredentialRejected,
            "Autotask says the integration code is invalid (HTTP 500: IntegrationCode is invalid.)",
        ),
    ],
)
@pytest.mark.parametrize("discover", [True, False])
def test_wrong_credentials_are_named(sandbox, changes, secrets, error, message, discover):
    at = adapter(sandbox, discover=discover, secrets=secrets, **changes)
    with pytest.raises(error) as raised:
        at.test()
    assert str(raised.value).startswith(message)


def test_a_zone_of_another_database_is_named(sandbox):
    other = autotask.zone_url(sandbox.base_url, "northwind")
    with pytest.raises(CredentialRejected) as raised:
        adapter(sandbox, zone_url=other).test()
    assert str(raised.value) == (
        f"Autotask rejected the API user (HTTP 401) at the zone URL {other}: user "
        f"{autotask.DEMO_CREDENTIALS['username']} belongs to the zone America West at "
        f"{demo_zone_url(sandbox)}. Clear the zone URL to look it up again."
    )


def test_a_zone_url_that_is_not_the_api(sandbox):
    with pytest.raises(Unreachable, match=r"with a web page \(HTTP 404\), not the API"):
        adapter(sandbox, zone_url=f"{sandbox.base_url}/autotask/nowhere/").test()


def test_container_types_are_the_documented_contract_types(sandbox):
    types = adapter(sandbox).container_types()
    assert types == [
        ContainerType("1", "Time and Materials"),
        ContainerType("3", "Fixed Price"),
        ContainerType("4", "Block Hours"),
        ContainerType("6", "Retainer"),
        ContainerType("7", "Recurring Service"),
        ContainerType("8", "Per Ticket"),
    ]
    assert state(sandbox)["requests"] == 1  # entityInformation, which the sandbox lacks


# --- reading -----------------------------------------------------------------------------------


def test_companies_are_the_customers_page_by_page(sandbox):
    pages = list(adapter(sandbox, page_size=50).iter_companies())
    assert [(p.number, p.total_pages, len(p.items)) for p in pages] == [
        (1, 4, 50),
        (2, 4, 50),
        (3, 4, 50),
        (4, 4, 5),
    ]
    records = {r.external_id: r for p in pages for r in p.items}
    truth = {str(c.id): c for c in DEMO.companies if c.company_type == "Customer"}
    assert set(records) == set(truth)
    for external_id, company in truth.items():
        record = records[external_id]
        assert (record.name, record.identifier, record.active) == (
            company.name,
            company.identifier,
            company.active,
        )
    assert state(sandbox)["requests"] == 1 + 4  # the count, then one request a page


def test_products_are_the_services_with_exact_prices(sandbox):
    pages = list(adapter(sandbox, page_size=8).iter_products())
    assert [len(p.items) for p in pages] == [8, 8, 4]
    records = {r.external_id: r for p in pages for r in p.items}
    assert set(records) == {str(p.id) for p in psa_data.catalogue()}
    diamond = records["900"]
    assert diamond.name == diamond.identifier == "KnowBe4 Diamond - per user"
    assert (diamond.unit_price, diamond.unit_cost) == (Decimal("3.75"), Decimal("2.10"))
    legacy = records["905"]
    assert legacy.name == "KnowBe4 Gold (legacy 2022 pricing)" and legacy.active is False
    for product in psa_data.catalogue():
        record = records[str(product.id)]
        assert record.unit_price == Decimal(str(product.unit_price))
        assert record.unit_cost == Decimal(str(product.unit_cost))


def test_billing_lines_carry_the_current_periods_units(sandbox):
    at = adapter(sandbox, page_size=50)
    pages = list(at.iter_billing_lines([]))
    assert [(p.number, p.total_pages) for p in pages] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    lines = {line.external_id: line for p in pages for line in p.items}
    truth = {str(line.id): line for line in DEMO.lines()}
    assert len(truth) == 548 and set(lines) == set(truth)
    for external_id, line in truth.items():
        record = lines[external_id]
        container = CONTAINERS[line.container_id]
        assert record.quantity == expected_units(line), external_id
        assert record.included_quantity == 0
        assert record.unit_price == Decimal(str(line.unit_price))
        assert record.product_external_id == str(line.product_id)
        assert record.container.external_id == str(container.id)
        assert record.container.company_external_id == str(container.company_id)
        assert record.container.kind == "contract"
        assert record.container.type_name == "Recurring Service"
        assert record.container.name == container.name
        assert (record.container.start_date, record.container.end_date) == (
            container.start_date,
            container.end_date,
        )
        if container.status == "Cancelled":
            assert record.read_only_reason == (
                f"Autotask contract {container.id} is inactive: it takes no adjustments."
            )
        elif container.end_date < today():
            assert record.read_only_reason == (
                f"Autotask contract {container.id} ended on {container.end_date}."
            )
        else:
            assert record.read_only_reason == ""
    assert sum(line.quantity for line in lines.values()) == sum(
        expected_units(line) for line in DEMO.lines()
    )
    # Proportional to pages, not rows: the count, then per page of 50 contracts one request
    # for them and one per page of their services and of their current units.
    assert at.requests == 1 + line_requests(50) == 30
    assert state(sandbox)["requests"] == at.requests


def test_billing_lines_of_other_contract_types_are_none(sandbox):
    at = adapter(sandbox)
    assert len(all_lines(at, ["7"])) == 548
    pages = list(at.iter_billing_lines(["1", "8"]))
    assert [(p.number, p.total_pages, p.items) for p in pages] == [(1, 1, [])]


def test_a_whole_import_of_the_demo_partner_in_requests(sandbox):
    at = adapter(sandbox, discover=True)
    at.test()
    at.container_types()
    companies = [r for p in at.iter_companies() for r in p.items]
    products = [r for p in at.iter_products() for r in p.items]
    lines = all_lines(at, ["7"])
    assert (len(companies), len(products), len(lines)) == (155, 20, 548)
    # zone + count | entityInformation | count + page | count + page | count + contracts +
    # 2 pages of services (548 > 500) + 2 unit queries (500 ids at most per `in`)
    assert at.requests == 2 + 1 + 2 + 2 + 6
    assert state(sandbox)["requests"] == 13


# --- limits and faults -------------------------------------------------------------------------


def test_429_with_retry_after_is_waited_out(sandbox, monkeypatch):
    original = autotask._spend_budget
    waits = iter([(2, 0.0)])
    monkeypatch.setattr(autotask, "_spend_budget", lambda slug: next(waits, None) or original(slug))
    at = adapter(sandbox, page_size=50)
    started = time.monotonic()
    companies = [r for p in at.iter_companies() for r in p.items]
    assert time.monotonic() - started >= 2.0
    assert len(companies) == 155
    assert state(sandbox)["rate_limited"] == 1
    assert state(sandbox)["requests"] == 1 + 1 + 4  # the count twice, then the pages


def test_an_exhausted_hourly_budget_is_rate_limited(sandbox, settings):
    settings.TRUEUP_HTTP_MAX_RETRY_WAIT = 1
    faults(sandbox, hourly_request_limit=3, threshold_latency=False)
    at = adapter(sandbox, page_size=50)
    pages = at.iter_companies()
    assert len(next(pages).items) == 50  # the count and the first page fit the budget
    assert len(next(pages).items) == 50
    with pytest.raises(RateLimited) as raised:
        next(pages)
    assert str(raised.value) == (
        "Autotask refused the request because the request limit is reached (HTTP 429: "
        "The API request threshold of this database has been exceeded.), and kept refusing "
        "after 4 retries. Autotask allows 10,000 requests per rolling hour per database, "
        "shared by all its integrations. Autotask asks to wait 60 minute(s)."
    )


def test_a_large_import_that_would_not_fit_the_budget_is_refused(sandbox):
    faults(sandbox, hourly_request_limit=200)  # the sandbox's ThresholdInformation says so
    at = adapter(sandbox, page_size=5)  # 193 contracts: 39 pages, about 117 requests
    with pytest.raises(RateLimited) as raised:
        next(at.iter_billing_lines([]))
    message = str(raised.value)
    assert message.startswith("Autotask's API budget cannot take the import of contract services")
    assert "of the 200 requests allowed per 60 minutes are used" in message
    assert "needs about 117" in message
    assert at.requests == 2  # the count and the threshold, no page


def test_a_large_import_that_fits_the_budget_goes_ahead(sandbox):
    at = adapter(sandbox, page_size=5)
    first = next(at.iter_billing_lines([]))
    assert (first.number, first.total_pages) == (1, 39)
    assert at.requests == 2 + line_requests(5, pages=1) == 10


def test_a_server_error_while_paging_is_a_server_fault(sandbox):
    faults(sandbox, fail_on_requests=[3], fail_status=500)  # count, page 1, then page 2
    pages = adapter(sandbox, page_size=50).iter_companies()
    assert len(next(pages).items) == 50
    with pytest.raises(ServerFault) as raised:
        next(pages)
    host = sandbox.base_url.split("://", 1)[1]
    assert str(raised.value) == (
        f"Autotask at {host} answered with a server error (HTTP 500): "
        "An unexpected error occurred on the server."
    )


def test_a_passing_503_while_paging_is_retried(sandbox):
    faults(sandbox, fail_on_requests=[3], fail_status=503)
    companies = [r for p in adapter(sandbox, page_size=50).iter_companies() for r in p.items]
    assert len(companies) == 155
    assert state(sandbox)["requests"] == 1 + 4 + 1


# --- writing -----------------------------------------------------------------------------------


def _line_record(sandbox, line: psa_data.BillingLine):
    return next(r for r in all_lines(adapter(sandbox), ["7"]) if r.external_id == str(line.id))


def test_write_sends_the_delta_and_read_line_shows_the_new_units(sandbox):
    line = writable_kb4_line()
    record = _line_record(sandbox, line)
    at = adapter(sandbox)
    assert at.read_line(key_of(record)).quantity == line.quantity
    target = Decimal(line.quantity + 7)
    answer = at.write_quantity(key_of(record), Decimal(line.quantity), target, today())
    assert (answer.status_code, answer.body) == (200, '{"itemId":1}')
    after = at.read_line(key_of(record))
    assert after.quantity == target
    assert after.effective_date == today()
    [write] = state(sandbox)["writes"]
    assert (write["contract_service_id"], write["unit_change"]) == (line.id, 7)
    assert write["units"] == [line.quantity, line.quantity + 7]
    assert write["effective_date"] == today().isoformat()

    down = at.write_quantity(key_of(record), target, Decimal(line.quantity - 2), today())
    assert down.status_code == 200
    assert at.read_line(key_of(record)).quantity == line.quantity - 2
    assert [w["unit_change"] for w in state(sandbox)["writes"]] == [7, -9]


def test_read_line_without_stored_records_fetches_them(sandbox):
    line = writable_kb4_line()
    at = adapter(sandbox)
    record = at.read_line(LineKey(str(line.container_id), str(line.id)))
    assert record.quantity == line.quantity
    assert record.container.external_id == str(line.container_id)
    assert record.unit_price == Decimal(str(line.unit_price))
    assert at.requests == 3  # the units, the contract service and the contract


def test_a_repeated_push_after_the_first_landed_sends_nothing(sandbox):
    line = writable_kb4_line()
    record = _line_record(sandbox, line)
    target = Decimal(line.quantity + 3)
    adapter(sandbox).write_quantity(key_of(record), Decimal(line.quantity), target, today())
    requests = state(sandbox)["requests"]

    retry = adapter(sandbox)  # the same push again, as the service layer makes it: read first
    current = retry.read_line(key_of(record)).quantity
    assert current == target and target - current == 0
    answer = retry.write_quantity(key_of(record), current, target, today())
    assert answer.status_code == 0 and "already bills" in answer.body
    assert state(sandbox)["requests"] == requests + 1  # the read, no adjustment
    assert len(state(sandbox)["writes"]) == 1


@pytest.mark.parametrize(
    "quantity, message",
    [
        (
            "12.5",
            "Autotask bills whole units only: cannot set contract service {id} (contract "
            "{contract}) to 12.5. Round the quantity first.",
        ),
        (
            "-1",
            "Autotask cannot bill -1 units on contract service {id} (contract {contract}): "
            "units cannot be negative.",
        ),
    ],
)
def test_fractional_or_negative_targets_are_refused_before_any_request(sandbox, quantity, message):
    line = writable_kb4_line()
    at = adapter(sandbox)
    key = LineKey(str(line.container_id), str(line.id))
    with pytest.raises(WriteRejected) as raised:
        at.write_quantity(key, Decimal(line.quantity), Decimal(quantity), today())
    assert str(raised.value) == message.format(id=line.id, contract=line.container_id)
    assert raised.value.status_code is None
    assert at.requests == 0 and state(sandbox)["requests"] == 0


def test_autotask_refusals_are_write_rejections_with_its_text(sandbox):
    line = writable_kb4_line()
    faults(sandbox, reject_writes="The contract is locked while it is being invoiced.")
    key = LineKey(str(line.container_id), str(line.id))
    with pytest.raises(WriteRejected) as raised:
        adapter(sandbox).write_quantity(key, Decimal(line.quantity), Decimal(1), today())
    assert str(raised.value) == (
        f"Autotask refused the adjustment of contract service {line.id} (contract "
        f"{line.container_id}) by {1 - line.quantity:+d} units from {today()} (HTTP 500): "
        "The contract is locked while it is being invoiced."
    )
    assert raised.value.status_code == 500
    assert raised.value.body == (
        '{"errors":["The contract is locked while it is being invoiced."]}'
    )


def test_an_effective_date_outside_the_contract_is_refused(sandbox):
    line = writable_kb4_line()
    container = CONTAINERS[line.container_id]
    before = container.start_date - datetime.timedelta(days=1)
    key = LineKey(str(line.container_id), str(line.id))
    with pytest.raises(WriteRejected, match="effectiveDate must fall between") as raised:
        adapter(sandbox).write_quantity(key, Decimal(line.quantity), Decimal(1), before)
    assert raised.value.status_code == 500
    assert state(sandbox)["writes"] == []


def test_a_failed_write_is_never_retried(sandbox):
    line = writable_kb4_line()
    key = key_of(_line_record(sandbox, line))
    sent = state(sandbox)["requests"]
    faults(sandbox, fail_on_requests=[sent + 1], fail_status=503)
    at = adapter(sandbox)
    with pytest.raises(WriteRejected) as raised:
        at.write_quantity(key, Decimal(line.quantity), Decimal(1), today())
    assert raised.value.status_code == 503
    assert str(raised.value).endswith("(HTTP 503): An unexpected error occurred on the server.")
    assert at.requests == 1 and state(sandbox)["requests"] == sent + 1
    assert state(sandbox)["writes"] == []


def test_a_write_without_the_stored_service_looks_it_up(sandbox):
    line = writable_kb4_line()
    at = adapter(sandbox)
    key = LineKey(str(line.container_id), str(line.id))
    assert at.write_quantity(key, Decimal(line.quantity), Decimal(4), today()).status_code == 200
    assert at.requests == 2  # the contract service (for its serviceID), then the adjustment
    [write] = state(sandbox)["writes"]
    assert (write["contract_service_id"], write["unit_change"]) == (line.id, 4 - line.quantity)
    missing = LineKey(str(line.container_id), "999999")
    with pytest.raises(WriteRejected, match="Autotask has no contract service 999999"):
        at.write_quantity(missing, Decimal(1), Decimal(2), today())
