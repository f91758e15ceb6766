"""The HaloPSA adapter over real HTTP against the Halo sandbox, checked against the ground truth
of `sandboxes.psa_data` (the demo partner). No database."""

import datetime
import math
import threading
import time
from decimal import Decimal

import httpx
import pytest

from psa.providers.base import LineKey
from psa.providers.halo.adapter import HaloAdapter
from reconcile.core.errors import (
    CredentialRejected,
    RateLimited,
    ServerFault,
    Unreachable,
    WriteRejected,
)
from sandboxes import halo, psa_data

DEMO = psa_data.universe("demo")
SERVED = sorted((c for c in DEMO.companies if c.company_type != "Vendor"), key=lambda c: c.id)
PRODUCTS = {p.id: p for p in psa_data.catalogue()}
CONTAINERS = {c.id: c for c in DEMO.containers}
TODAY = datetime.date(2026, 11, 20)
CALCULATED_REASON = (
    "Halo calculates this quantity from the client's users, so TrueUp cannot set it."
)


def _adapter(sandbox, **settings) -> HaloAdapter:
    creds = halo.demo_credentials(sandbox.base_url)
    secrets = {"client_id": creds["client_id"], "client_secret": creds["client_secret"]}
    secrets.update(settings.pop("secrets", {}))
    return HaloAdapter(
        settings={
            "resource_server": creds["resource_server"],
            "auth_server": creds["auth_server"],
            "tenant": creds["tenant"],
            **settings,
        },
        secrets=secrets,
    )


def _faults(sandbox, **faults) -> None:
    httpx.post(f"{sandbox.base_url}/_sandbox/halo/faults", json=faults).raise_for_status()


def _state(sandbox) -> dict:
    return httpx.get(f"{sandbox.base_url}/_sandbox/halo/state").json()


def _writable_container() -> psa_data.BillingContainer:
    """An active recurring invoice with at least three lines, the first of them writable."""
    return next(
        c
        for c in DEMO.containers
        if c.status == "Active"
        and len(c.lines) >= 3
        and not c.lines[0].calculated
        and c.lines[0].cancelled_date is None
    )


def _key(line: psa_data.BillingLine, raw: dict | None = None) -> LineKey:
    return LineKey(container_id=str(-line.container_id), line_id=str(line.id), raw=raw or {})


# --- reads -------------------------------------------------------------------------------------


def test_connection_check_names_the_tenant_and_counts_clients(sandbox):
    adapter = _adapter(sandbox)
    check = adapter.test()
    assert check.message == (
        f"Halo accepted the client ID and secret (tenant demo, {len(SERVED)} clients)."
    )
    assert check.latency_ms >= 0 and check.settings == {}
    assert _state(sandbox)["requests"] == 2  # the token and one page of one client
    assert [(t.external_id, t.name) for t in adapter.container_types()] == [
        ("recurring_invoice", "Recurring invoices")
    ]


def test_companies_page_by_page_until_record_count(sandbox):
    adapter = _adapter(sandbox, page_size=40)
    pages = list(adapter.iter_companies())
    expected_pages = math.ceil(len(SERVED) / 40)
    assert len(SERVED) == 168 and expected_pages == 5
    assert [p.number for p in pages] == [1, 2, 3, 4, 5]
    assert {p.total_pages for p in pages} == {5}
    assert [len(p.items) for p in pages] == [40, 40, 40, 40, 8]
    companies = [c for p in pages for c in p.items]
    assert [(c.external_id, c.name, c.identifier, c.active) for c in companies] == [
        (str(c.id), c.name, c.identifier, c.active) for c in SERVED
    ]
    assert sum(not c.active for c in companies) == 7
    assert _state(sandbox)["requests"] == 1 + 5  # one token for every page


def test_products_with_exact_prices(sandbox):
    pages = list(_adapter(sandbox, page_size=8).iter_products())
    assert [(p.number, p.total_pages, len(p.items)) for p in pages] == [
        (1, 3, 8),
        (2, 3, 8),
        (3, 3, 4),
    ]
    products = {p.external_id: p for page in pages for p in page.items}
    assert len(products) == 20
    for product in PRODUCTS.values():
        record = products[str(product.id)]
        assert record.identifier == product.identifier
        assert record.name == product.name
        assert record.unit_price == Decimal(str(product.unit_price))
        assert record.unit_cost == Decimal(str(product.unit_cost))
        assert record.active is product.active
    legacy = products["905"]
    assert (legacy.identifier, legacy.active) == ("KB4-GOLD-OLD", False)
    assert str(products["900"].unit_price) == "3.75" and str(products["900"].unit_cost) == "2.1"
    assert products["900"].raw["baseprice"] == 3.75  # raw stays plain JSON


def test_billing_lines_of_every_recurring_invoice(sandbox):
    adapter = _adapter(sandbox, page_size=30)
    pages = list(adapter.iter_billing_lines([]))
    invoices = len(DEMO.containers)
    assert [p.number for p in pages] == list(range(1, math.ceil(invoices / 30) + 1))
    assert {p.total_pages for p in pages} == {math.ceil(invoices / 30)}
    lines = {line.external_id: line for p in pages for line in p.items}
    truth = DEMO.lines()
    assert len(lines) == len(truth) == sum(len(p.items) for p in pages) == 548
    for line in truth:
        record = lines[str(line.id)]
        container = CONTAINERS[line.container_id]
        product = PRODUCTS[line.product_id]
        assert record.container.external_id == str(-container.id)
        assert record.container.company_external_id == str(container.company_id)
        assert record.container.kind == "recurring_invoice"
        assert record.container.name == container.name
        assert record.container.status == ("Active" if container.status == "Active" else "Disabled")
        assert record.product_external_id == str(product.id)
        assert record.product_identifier == product.identifier
        assert record.description == product.name
        assert record.quantity == (Decimal(0) if line.calculated else Decimal(line.quantity))
        assert record.included_quantity == Decimal(0)
        assert record.unit_price == Decimal(str(line.unit_price))
        assert record.effective_date == line.effective_date
        assert record.cancelled_date == line.cancelled_date
        assert record.read_only_reason == (CALCULATED_REASON if line.calculated else "")
    assert sum(bool(x.read_only_reason) for x in lines.values()) == 8
    # Requests follow pages, not rows: one token and one request per page of invoices.
    assert _state(sandbox)["requests"] == 1 + len(pages)
    assert adapter.requests == 1 + len(pages)


def test_billing_lines_of_an_unknown_type_are_none(sandbox):
    assert list(_adapter(sandbox).iter_billing_lines(["something-else"])) == []
    assert _state(sandbox)["requests"] == 0


def test_read_line_as_halo_holds_it(sandbox):
    line = _writable_container().lines[1]
    record = _adapter(sandbox).read_line(_key(line))
    assert record.external_id == str(line.id)
    assert record.quantity == Decimal(line.quantity)
    assert record.container.external_id == str(-line.container_id)


# --- tokens ------------------------------------------------------------------------------------


def test_one_token_serves_many_calls(sandbox):
    adapter = _adapter(sandbox, page_size=100)
    container = _writable_container()
    list(adapter.iter_products())
    list(adapter.iter_companies())  # 2 pages
    for line in container.lines:
        adapter.read_line(_key(line))
    calls = 1 + 2 + len(container.lines)
    assert _state(sandbox)["requests"] == 1 + calls
    assert adapter.requests == 1 + calls


def test_token_renewed_before_it_runs_out(sandbox):
    _faults(sandbox, token_lifetime_seconds=1)
    adapter = _adapter(sandbox)
    list(adapter.iter_products())
    time.sleep(1.1)
    assert len(next(adapter.iter_products()).items) == 20
    # token, items, (expired by the adapter's own clock) token, items: no refused request.
    assert _state(sandbox)["requests"] == 4


def test_token_expired_at_halo_is_renewed_once_and_the_call_repeated(sandbox):
    adapter = _adapter(sandbox)
    list(adapter.iter_products())
    _faults(sandbox, token_lifetime_seconds=1)  # the cached (3600 s) token dies after 1 s
    time.sleep(1.1)
    assert len(next(adapter.iter_products()).items) == 20
    # token, items, items refused with 401, new token, items again
    assert _state(sandbox)["requests"] == 5


def test_wrong_secret_is_credential_rejected(sandbox):
    adapter = _adapter(sandbox, secrets={"client_secret": "not-the-secret"})
    with pytest.raises(CredentialRejected, match=r"rejected the client ID or secret \(invalid_"):
        adapter.test()


def test_unknown_scope_and_missing_permission_are_named(sandbox):
    with pytest.raises(CredentialRejected, match="does not grant the scope 'admin'"):
        _adapter(sandbox, scope="admin").test()
    reader = _adapter(sandbox, scope="read:customers read:invoices")
    check = reader.test()
    assert check.message.endswith(
        "lacks the edit:invoices permission, so TrueUp can read quantities but not correct them."
    )
    with pytest.raises(CredentialRejected, match=r"token lacks the read:items permission"):
        list(reader.iter_products())
    line = _writable_container().lines[0]
    with pytest.raises(WriteRejected, match="token lacks the edit:invoices permission") as refused:
        reader.write_quantity(_key(line), Decimal(line.quantity), Decimal(3), TODAY)
    assert refused.value.status_code == 403


# --- faults ------------------------------------------------------------------------------------


def test_429_with_retry_after_is_waited_out(sandbox, settings):
    settings.TRUEUP_HTTP_MAX_RETRY_WAIT = 1.5
    _faults(sandbox, rate_limit_per_minute=2)  # token free, 2 pages, then 429 Retry-After ~60

    def lift_when_limited():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _state(sandbox)["rate_limited"] < 1:
            time.sleep(0.02)
        _faults(sandbox, rate_limit_per_minute=None)

    lifter = threading.Thread(target=lift_when_limited)
    lifter.start()
    started = time.monotonic()
    pages = list(_adapter(sandbox, page_size=8).iter_products())
    waited = time.monotonic() - started
    lifter.join()
    assert [len(p.items) for p in pages] == [8, 8, 4]
    assert _state(sandbox)["rate_limited"] == 1
    # Retry-After (capped at TRUEUP_HTTP_MAX_RETRY_WAIT) was waited, not the 0.5 s back-off.
    assert 1.4 <= waited < 5


def test_429_that_never_ends_is_rate_limited(sandbox, settings):
    settings.TRUEUP_HTTP_MAX_RETRY_WAIT = 0.2
    settings.TRUEUP_HTTP_RETRIES = 1
    _faults(sandbox, rate_limit_per_minute=1)
    adapter = _adapter(sandbox, page_size=8)
    with pytest.raises(RateLimited, match=r"rate limiting requests \(HTTP 429\)"):
        list(adapter.iter_products())


def test_server_error_while_paging_is_a_server_fault(sandbox):
    _faults(sandbox, fail_on_requests=[3], fail_status=500)  # token, page 1, page 2
    pages = _adapter(sandbox, page_size=8).iter_products()
    assert len(next(pages).items) == 8
    with pytest.raises(ServerFault) as fault:
        next(pages)
    assert str(fault.value) == (
        f"Halo at {sandbox.base_url.split('://')[1]} answered with a server error (HTTP 500): "
        "An unexpected error occurred on the server."
    )


def test_503_while_paging_is_retried(sandbox):
    _faults(sandbox, fail_on_requests=[3], fail_status=503)
    pages = list(_adapter(sandbox, page_size=8).iter_products())
    assert [len(p.items) for p in pages] == [8, 8, 4]
    assert _state(sandbox)["requests"] == 5


def test_html_page_is_unreachable(sandbox):
    _faults(sandbox, fail_on_requests=[2], fail_status=500, html_errors=True)
    with pytest.raises(Unreachable, match=r"answered with a web page \(HTTP 500\), not the API"):
        _adapter(sandbox).test()


def test_wrong_urls_are_unreachable(sandbox):
    base = sandbox.base_url
    wrong_api = _adapter(sandbox, resource_server=f"{base}/halo/nothing")
    with pytest.raises(Unreachable, match=r"Check the resource server URL \(it ends in /api\)"):
        wrong_api.test()
    wrong_auth = _adapter(sandbox, auth_server=f"{base}/halo/nothing")
    with pytest.raises(Unreachable, match="Check the authorisation server URL"):
        wrong_auth.test()
    nobody = _adapter(sandbox, auth_server="http://127.0.0.1:9/auth")
    with pytest.raises(Unreachable, match="connection was refused"):
        nobody.test()


# --- writes ------------------------------------------------------------------------------------


def test_write_sets_the_quantity_and_leaves_the_other_lines(sandbox):
    container = _writable_container()
    target, *others = container.lines
    adapter = _adapter(sandbox)
    before = adapter.read_line(_key(target))
    assert before.quantity == Decimal(target.quantity)
    new = Decimal(target.quantity + 7)
    answer = adapter.write_quantity(_key(target, before.raw), before.quantity, new, TODAY)
    assert answer.status_code == 200 and f'"qty_order":{float(new)}' in answer.body
    assert adapter.read_line(_key(target)).quantity == new
    for line in others:
        assert adapter.read_line(_key(line)).quantity == (
            Decimal(0) if line.calculated else Decimal(line.quantity)
        )
    header = httpx.get(f"{sandbox.base_url}/_sandbox/halo/state").json()
    assert [(w["resource"], w["id"], w["header_id"], w["changes"]) for w in header["writes"]] == [
        (
            "RecurringInvoice/updatelines",
            target.id,
            -container.id,
            {"qty_order": [float(target.quantity), float(new)]},
        )
    ]


def test_fractional_quantity_is_written_exactly(sandbox):
    target = _writable_container().lines[0]
    adapter = _adapter(sandbox)
    adapter.write_quantity(_key(target), Decimal(target.quantity), Decimal("12.5"), TODAY)
    assert adapter.read_line(_key(target)).quantity == Decimal("12.5")


def test_calculated_line_is_read_only_and_never_sent(sandbox):
    calculated = next(line for line in DEMO.lines() if line.calculated)
    adapter = _adapter(sandbox)
    record = adapter.read_line(_key(calculated))
    assert record.read_only_reason == CALCULATED_REASON
    assert record.quantity == Decimal(0)
    requests = _state(sandbox)["requests"]
    with pytest.raises(WriteRejected, match="calculates this quantity from the client's users"):
        adapter.write_quantity(_key(calculated, record.raw), Decimal(0), Decimal(5), TODAY)
    assert _state(sandbox)["requests"] == requests
    assert _state(sandbox)["writes"] == []


def test_refusal_carries_halos_message_status_and_body(sandbox):
    _faults(sandbox, reject_writes="The recurring invoice is locked by another user.")
    target = _writable_container().lines[0]
    with pytest.raises(WriteRejected) as refused:
        _adapter(sandbox).write_quantity(_key(target), Decimal(1), Decimal(2), TODAY)
    assert str(refused.value) == (
        "Halo refused the change (HTTP 400): The recurring invoice is locked by another user."
    )
    assert refused.value.status_code == 400
    assert refused.value.body == '"The recurring invoice is locked by another user."'
    # Halo's own refusal of a calculated line, when the stored raw record did not say so.
    calculated = next(line for line in DEMO.lines() if line.calculated)
    _faults(sandbox, reject_writes=None)
    with pytest.raises(WriteRejected, match="is calculated by Halo") as halo_said:
        _adapter(sandbox).write_quantity(_key(calculated), Decimal(0), Decimal(5), TODAY)
    assert halo_said.value.status_code == 400
