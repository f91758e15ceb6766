"""What only the Syncro adapter does, against the Syncro sandbox over real HTTP: its fixed pages
of 25, quantities as decimal strings, lines counted from assets, the token's permissions, and
the connect form's address."""

import math
from decimal import Decimal

import httpx
import pytest

from psa.providers.base import LineKey
from psa.providers.syncro.adapter import SyncroAdapter
from psa.providers.syncro.forms import SyncroForm
from reconcile.core.errors import BadAnswer, CredentialRejected, Unreachable, WriteRejected
from sandboxes import data, psa_data, syncro

UNIVERSE = psa_data.universe("demo")


def adapter(sandbox, slug="demo", **secrets) -> SyncroAdapter:
    settings, demo_secrets = syncro.connection_fields(sandbox.base_url, slug)
    return SyncroAdapter(settings=settings, secrets=demo_secrets | secrets)


def faults(sandbox, **switches):
    httpx.post(f"{sandbox.base_url}/_sandbox/syncro/faults", json=switches).raise_for_status()


def state(sandbox) -> dict:
    return httpx.get(f"{sandbox.base_url}/_sandbox/syncro/state").json()


def lines_of(syncro_adapter):
    return [line for page in syncro_adapter.iter_billing_lines([]) for line in page.items]


def test_test_names_the_account_and_counts_its_customers(sandbox):
    check = adapter(sandbox).test()
    customers = [c for c in UNIVERSE.companies if c.company_type != "Vendor"]
    assert check.message.startswith("Syncro accepted the API token (")
    assert f"{len(customers)} customers" in check.message
    assert state(sandbox)["requests"] == 2  # customers and schedules, one page each


def test_companies_come_in_pages_of_25_with_disabled_ones(sandbox):
    pages = list(adapter(sandbox).iter_companies())
    customers = [c for c in UNIVERSE.companies if c.company_type != "Vendor"]
    assert len(pages) == math.ceil(len(customers) / 25)
    assert all(page.total_pages == len(pages) for page in pages)
    companies = {c.external_id: c for page in pages for c in page.items}
    assert len(companies) == len(customers)
    inactive = next(c for c in customers if not c.active)
    assert companies[str(inactive.id)].active is False


def test_quantities_are_exact_decimals_and_asset_lines_are_read_only(sandbox):
    lines = lines_of(adapter(sandbox))
    live = [line for line in UNIVERSE.lines() if not line.cancelled_date]
    assert len(lines) == len(live)  # a cancelled line is not on a Syncro schedule
    by_id = {line.external_id: line for line in lines}
    for expected in live:
        assert by_id[str(expected.id)].quantity == Decimal(expected.quantity)
        assert isinstance(by_id[str(expected.id)].quantity, Decimal)
    counted = [by_id[str(line.id)] for line in live if line.calculated]
    assert counted and all("assets" in line.read_only_reason for line in counted)
    assert all(line.container.kind == "schedule" for line in lines)


def test_a_push_is_a_put_of_the_line_item_and_reads_back(sandbox):
    syncro_adapter = adapter(sandbox)
    line = next(li for li in lines_of(syncro_adapter) if not li.read_only_reason)
    key = LineKey(line.container.external_id, line.external_id, line.raw)
    answer = syncro_adapter.write_quantity(
        key, line.quantity, line.quantity + Decimal("2.5"), data.UNIVERSE_DATE
    )
    assert answer.status_code == 200 and '"schedule_line_item"' in answer.body
    assert syncro_adapter.read_line(key).quantity == line.quantity + Decimal("2.5")
    (write,) = state(sandbox)["writes"]
    assert write["method"] == "PUT" and str(write["id"]) == line.external_id


def test_a_line_counted_from_assets_is_refused_before_any_request(sandbox):
    syncro_adapter = adapter(sandbox)
    line = next(li for li in lines_of(syncro_adapter) if li.read_only_reason)
    sent = state(sandbox)["requests"]
    key = LineKey(line.container.external_id, line.external_id, line.raw)
    with pytest.raises(WriteRejected, match="from the customer's assets"):
        syncro_adapter.write_quantity(key, line.quantity, Decimal(3), data.UNIVERSE_DATE)
    assert state(sandbox)["requests"] == sent


def test_a_token_without_the_edit_permission_cannot_push(sandbox):
    syncro_adapter = adapter(sandbox)
    line = next(li for li in lines_of(syncro_adapter) if not li.read_only_reason)
    faults(
        sandbox,
        permissions=[
            "Customers - List/Search",
            "Products - List/Search",
            "Recurring Invoices - List",
        ],
    )
    key = LineKey(line.container.external_id, line.external_id, line.raw)
    with pytest.raises(WriteRejected, match="Give it Recurring Invoices - Edit") as refused:
        syncro_adapter.write_quantity(key, line.quantity, Decimal(9), data.UNIVERSE_DATE)
    assert refused.value.status_code == 403
    assert syncro_adapter.read_line(key).quantity == line.quantity


def test_a_token_without_schedules_fails_the_test(sandbox):
    faults(sandbox, permissions=["Customers - List/Search", "Products - List/Search"])
    with pytest.raises(CredentialRejected, match="lacks a permission"):
        adapter(sandbox).test()


def test_a_wrong_token_or_another_accounts_token_is_rejected(sandbox):
    with pytest.raises(CredentialRejected, match="rejected the API token"):
        adapter(sandbox, api_token="not-the-token").test()
    other = syncro.partner_credentials(sandbox.base_url, "bench")["api_token"]
    with pytest.raises(CredentialRejected, match="rejected the API token"):
        adapter(sandbox, api_token=other).test()


def test_a_schedule_deleted_in_syncro_is_named(sandbox):
    syncro_adapter = adapter(sandbox)
    with pytest.raises(BadAnswer, match="no invoice schedule 999999 any more"):
        syncro_adapter.read_line(LineKey("999999", "1"))


def test_a_list_without_its_paging_is_a_bad_answer(sandbox):
    faults(sandbox, mangle="missing_fields", mangle_on_requests=[1])
    with pytest.raises(BadAnswer, match="Syncro's customers list"):
        list(adapter(sandbox).iter_companies())


def test_a_web_page_instead_of_the_api_says_so(sandbox):
    settings, secrets = syncro.connection_fields(sandbox.base_url)
    settings = {"api_url": settings["api_url"].replace("/api/v1", "/nowhere")}
    with pytest.raises(Unreachable, match="a web page"):
        SyncroAdapter(settings=settings, secrets=secrets).test()


@pytest.mark.parametrize(
    "typed, stored",
    [
        ("acme", "https://acme.syncromsp.com/api/v1"),
        ("acme.syncromsp.com", "https://acme.syncromsp.com/api/v1"),
        ("https://acme.syncromsp.com/", "https://acme.syncromsp.com/api/v1"),
        ("https://acme.syncromsp.com/api/v1/", "https://acme.syncromsp.com/api/v1"),
        ("http://127.0.0.1:8001/syncro/demo/api/v1", "http://127.0.0.1:8001/syncro/demo/api/v1"),
    ],
)
def test_the_form_takes_a_subdomain_an_address_or_the_api_url(typed, stored):
    form = SyncroForm({"api_url": typed, "api_token": "t0ken"})
    assert form.is_valid(), form.errors
    assert form.settings() == {"api_url": stored} and form.secrets() == {"api_token": "t0ken"}


def test_the_form_refuses_what_is_no_address():
    form = SyncroForm({"api_url": "https://exa mple", "api_token": "with space"})
    assert not form.is_valid()
    assert form.errors["api_url"] == ["Enter a valid URL."]
    assert "spaces" in form.errors["api_token"][0]
