"""One contract, every registered PSA: each adapter against its sandbox over real HTTP."""

import math
from decimal import Decimal

import pytest

from psa.providers.base import LineKey
from reconcile.core.errors import CredentialRejected, ServerFault
from sandboxes import data, psa_data

UNIVERSE = psa_data.universe("demo")


def all_items(pages):
    pages = list(pages)
    return pages, [item for page in pages for item in page.items]


def test_reads_every_line_over_several_pages(psa_sandbox):
    adapter = psa_sandbox.adapter(page_size=50)
    pages, lines = all_items(adapter.iter_billing_lines([]))
    assert len(pages) > 1
    ids = {line.external_id for line in lines}
    assert len(ids) == len(lines)
    # every live line; a PSA that keeps cancelled lines (all but Syncro) lists those too
    assert {str(line.id) for line in UNIVERSE.lines() if not line.cancelled_date} <= ids
    assert ids <= {str(line.id) for line in UNIVERSE.lines()}


def test_reads_companies_and_products_over_several_pages(psa_sandbox):
    adapter = psa_sandbox.adapter(page_size=7)  # a PSA with a fixed page size keeps its own
    product_pages, products = all_items(adapter.iter_products())
    assert len(product_pages) == math.ceil(len(UNIVERSE.products) / adapter.page_size)
    assert len(products) == len(UNIVERSE.products)
    company_pages, companies = all_items(adapter.iter_companies())
    assert len(company_pages) > 1
    names = {c.name for c in companies}
    billed = {c.company_id for c in UNIVERSE.containers}
    # every company that is billed is imported; vendors never are
    assert {c.name for c in UNIVERSE.companies if c.id in billed} <= names
    assert not names & {c.name for c in UNIVERSE.companies if c.company_type == "Vendor"}


def test_wrong_secret_is_a_credential_error(psa_sandbox):
    adapter = psa_sandbox.adapter()
    adapter.secrets = {key: value[:-1] + "x" for key, value in adapter.secrets.items()}
    with pytest.raises(CredentialRejected):
        adapter.test()


def test_429_with_retry_after_is_waited_out(psa_sandbox, settings):
    psa_sandbox.faults(fail_on_requests=[1, 2], fail_status=429)
    adapter = psa_sandbox.adapter()
    _, products = all_items(adapter.iter_products())
    assert len(products) == len(UNIVERSE.products)
    assert psa_sandbox.state()["requests"] >= 3 and psa_sandbox.state()["rate_limited"] == 0


def test_server_error_while_paging_is_a_server_fault(psa_sandbox):
    adapter = psa_sandbox.adapter(page_size=50)
    adapter.test()
    sent = psa_sandbox.state()["requests"]
    psa_sandbox.faults(fail_on_requests=[sent + 2], fail_status=500)
    with pytest.raises(ServerFault):
        list(adapter.iter_billing_lines([]))


def writable_line(adapter):
    _, lines = all_items(adapter.iter_billing_lines([]))
    return next(
        line
        for line in lines
        if not line.read_only_reason and not line.cancelled_date and line.quantity >= 3
    )


def test_write_then_read_back_and_an_idempotent_retry(psa_sandbox):
    adapter = psa_sandbox.adapter()
    line = writable_line(adapter)
    key = LineKey(line.container.external_id, line.external_id, line.raw)
    target = line.quantity + 7
    answer = adapter.write_quantity(key, line.quantity, target, data.UNIVERSE_DATE)
    assert 200 <= answer.status_code < 300
    assert adapter.read_line(key).quantity == target
    # A retry reads first: nothing is missing, so the change to send is zero.
    current = adapter.read_line(key).quantity
    assert current == target and (target - current) == Decimal(0)
