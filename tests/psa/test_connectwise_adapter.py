"""The ConnectWise adapter over real HTTP against the ConnectWise sandbox (ground truth from
sandboxes.psa_data: the demo partner has 173 companies, 20 catalogue items, 193 agreements)."""

import datetime
import threading
from decimal import Decimal

import httpx
import pytest

from psa.providers import PROVIDERS
from psa.providers.base import LineKey
from psa.providers.connectwise.adapter import ConnectWiseAdapter
from reconcile.core.errors import (
    BadAnswer,
    CredentialRejected,
    RateLimited,
    ServerFault,
    Unreachable,
    WriteRejected,
)
from sandboxes import data, psa_data
from sandboxes.connectwise import CURRENT_CODEBASE, demo_credentials

DEMO = data.PARTNERS[data.DEMO_PARTNER_KEY].slug
UNIVERSE = psa_data.universe(DEMO)
PRODUCTS = {p.id: p for p in UNIVERSE.products}
# Companies the adapter keeps: every one but the vendors (the sandbox names them "Vendor").
CUSTOMER_SIDE = [c for c in UNIVERSE.companies if c.company_type != "Vendor"]


def make_adapter(sandbox, *, secrets=None, **settings) -> ConnectWiseAdapter:
    creds = demo_credentials(sandbox.base_url)
    return ConnectWiseAdapter(
        settings={
            "site": creds["site"],
            "codebase": creds["codebase"],
            "client_id": creds["client_id"],
            "page_size": 50,
        }
        | settings,
        secrets={
            "company_id": creds["company_id"],
            "public_key": creds["public_key"],
            "private_key": creds["private_key"],
        }
        | (secrets or {}),
    )


def faults(sandbox, **switches):
    response = httpx.post(f"{sandbox.base_url}/_sandbox/connectwise/faults", json=switches)
    response.raise_for_status()


def state(sandbox) -> dict:
    return httpx.get(f"{sandbox.base_url}/_sandbox/connectwise/state").json()


def expected_lines(type_names=None):
    return {
        line.id: (container, line)
        for container in UNIVERSE.containers
        if type_names is None or container.type_name in type_names
        for line in container.lines
    }


def key_of(line) -> LineKey:
    return LineKey(container_id=str(line.container_id), line_id=str(line.id))


def test_registry_names_the_adapter():
    assert PROVIDERS["connectwise"].adapter_class is ConnectWiseAdapter
    assert ConnectWiseAdapter.kind == "connectwise"
    assert ConnectWiseAdapter.label == "ConnectWise PSA"
    assert ConnectWiseAdapter.delta_writes is False


# --- connecting ------------------------------------------------------------------------------


def test_connection_check_with_a_stored_codebase(sandbox):
    adapter = make_adapter(sandbox)
    check = adapter.test()
    assert check.message == (
        f"ConnectWise accepted the keys (company demomsp, codebase {CURRENT_CODEBASE}, "
        f"{len(UNIVERSE.companies)} companies)."
    )
    assert len(UNIVERSE.companies) == 173
    assert check.settings == {}
    assert check.latency_ms >= 0
    assert adapter.requests == 1
    assert state(sandbox)["requests"] == 1


def test_connection_check_discovers_the_codebase(sandbox):
    adapter = make_adapter(sandbox, codebase="")
    check = adapter.test()
    assert check.settings == {"codebase": "v2025_1/"}
    assert "codebase v2025_1," in check.message
    assert adapter.requests == 2  # companyinfo, then the count
    # The discovered codebase (with its trailing slash) works when stored.
    assert make_adapter(sandbox, codebase="v2025_1/").test().settings == {}


def test_other_reads_discover_a_missing_codebase_too(sandbox):
    types = make_adapter(sandbox, codebase="").container_types()
    assert [(t.external_id, t.name) for t in types] == [
        ("4", "Backup"),
        ("1", "Managed Services"),
        ("3", "Microsoft 365"),
        ("2", "Security Awareness Training"),
    ]


def test_the_legacy_codebase_alias_works(sandbox):
    assert make_adapter(sandbox, codebase="v4_6_release/").test().settings == {}


def test_wrong_private_key(sandbox):
    adapter = make_adapter(sandbox, secrets={"private_key": "WrongWrongWrong1"})
    with pytest.raises(CredentialRejected) as error:
        adapter.test()
    assert str(error.value) == (
        "ConnectWise rejected the public/private key pair for company demomsp (HTTP 401). "
        "Check the company ID and both API member keys."
    )


def test_wrong_company_with_a_stored_codebase(sandbox):
    adapter = make_adapter(sandbox, secrets={"company_id": "othermsp"})
    with pytest.raises(CredentialRejected, match=r"company othermsp \(HTTP 401\)"):
        adapter.test()


def test_unknown_company_when_discovering_the_codebase(sandbox):
    adapter = make_adapter(sandbox, codebase="", secrets={"company_id": "nosuchmsp"})
    host = sandbox.base_url.split("://", 1)[1]
    with pytest.raises(CredentialRejected) as error:
        adapter.test()
    assert str(error.value) == (
        f"ConnectWise at {host}/connectwise does not know the company ID nosuchmsp."
    )


def test_missing_client_id_is_named_before_any_request(sandbox):
    adapter = make_adapter(sandbox, client_id="")
    with pytest.raises(CredentialRejected, match=r"^clientId missing"):
        adapter.test()
    assert state(sandbox)["requests"] == 0


def test_malformed_client_id_shows_connectwise_message(sandbox):
    adapter = make_adapter(sandbox, client_id="not-a-guid")
    with pytest.raises(CredentialRejected) as error:
        adapter.test()
    assert str(error.value) == (
        "ConnectWise refused the clientId (HTTP 400): A valid clientId header is required. "
        "See https://developer.connectwise.com/ClientID"
    )


def test_missing_keys_are_named(sandbox):
    adapter = make_adapter(sandbox, secrets={"public_key": "", "private_key": " "})
    with pytest.raises(
        CredentialRejected, match=r"^ConnectWise public key and private key missing"
    ):
        adapter.test()


def test_wrong_codebase(sandbox):
    adapter = make_adapter(sandbox, codebase="v9_9")
    host = sandbox.base_url.split("://", 1)[1]
    with pytest.raises(Unreachable) as error:
        adapter.test()
    assert str(error.value).startswith(
        f"ConnectWise has no codebase v9_9 at {host}/connectwise (HTTP 404 web page)."
    )


def test_wrong_site_path_answers_with_a_web_page(sandbox):
    adapter = make_adapter(sandbox, site=sandbox.base_url + "/nothing-here", codebase="")
    with pytest.raises(Unreachable, match=r"not the API\. Check the site URL\.$"):
        adapter.test()


def test_html_answer_is_unreachable(sandbox):
    faults(sandbox, fail_on_requests=[1], fail_status=500, html_errors=True)
    with pytest.raises(Unreachable) as error:
        make_adapter(sandbox).test()
    assert "it answered with a web page (HTTP 500), not the API" in str(error.value)


def test_nobody_listening_is_unreachable(sandbox):
    adapter = make_adapter(sandbox, site="http://127.0.0.1:9/connectwise")
    with pytest.raises(Unreachable, match="connection was refused or the host is unknown"):
        adapter.test()


# --- reading -------------------------------------------------------------------------------


def test_companies_over_several_pages(sandbox):
    adapter = make_adapter(sandbox)
    pages = list(adapter.iter_companies())
    assert [p.number for p in pages] == [1, 2, 3, 4]
    assert [p.total_pages for p in pages] == [4, 4, 4, 4]
    companies = [c for p in pages for c in p.items]
    assert len(companies) == len(CUSTOMER_SIDE) == 168
    assert [c.external_id for c in companies] == [str(c.id) for c in CUSTOMER_SIDE]
    assert [c.name for c in companies] == [c.name for c in CUSTOMER_SIDE]
    assert [c.identifier for c in companies] == [c.identifier for c in CUSTOMER_SIDE]
    assert [c.active for c in companies] == [c.active for c in CUSTOMER_SIDE]
    first = companies[0]
    assert first.raw["types"][0]["name"] in ("Client", "Prospect")
    assert adapter.requests == 4


def test_products_over_several_pages(sandbox):
    adapter = make_adapter(sandbox, page_size=7)
    pages = list(adapter.iter_products())
    assert [len(p.items) for p in pages] == [7, 7, 6]
    products = {p.external_id: p for page in pages for p in page.items}
    assert len(products) == 20
    for product in UNIVERSE.products:
        record = products[str(product.id)]
        assert record.identifier == product.identifier
        assert record.name == product.name
        assert record.unit_price == Decimal(str(product.unit_price))
        assert record.unit_cost == Decimal(str(product.unit_cost))
        assert record.active is product.active
    legacy = next(p for p in products.values() if p.identifier == "KB4-GOLD-OLD")
    assert (legacy.unit_price, legacy.unit_cost, legacy.active) == (
        Decimal("2.1"),
        Decimal("1.25"),
        False,
    )


def test_billing_lines_of_every_type(sandbox):
    adapter = make_adapter(sandbox)
    pages = list(adapter.iter_billing_lines([]))
    assert [p.number for p in pages] == [1, 2, 3, 4]
    assert [p.total_pages for p in pages] == [4, 4, 4, 4]
    lines = [line for p in pages for line in p.items]
    expected = expected_lines()
    assert len(lines) == len(expected) == 548
    assert {line.external_id for line in lines} == {str(i) for i in expected}
    for record in lines:
        container, line = expected[int(record.external_id)]
        product = PRODUCTS[line.product_id]
        assert record.quantity == Decimal(line.quantity)
        assert record.included_quantity == Decimal(line.less_included)
        assert record.unit_price == Decimal(str(line.unit_price))
        assert record.effective_date == line.effective_date
        assert record.cancelled_date == line.cancelled_date
        assert record.product_external_id == str(product.id)
        assert record.product_identifier == product.identifier
        assert record.description == product.name
        assert record.container.external_id == str(container.id)
        assert record.container.company_external_id == str(container.company_id)
        assert record.container.kind == "agreement"
        assert record.container.type_name == container.type_name
        assert record.container.name == container.name
        assert record.container.status == container.status
        assert record.container.start_date == container.start_date
        assert record.container.end_date == container.end_date
    # One request per agreement page plus one per agreement (none has more than 50 additions).
    assert adapter.requests == 4 + len(UNIVERSE.containers) == 197
    assert sum(line.quantity for line in lines) == sum(
        Decimal(line.quantity) for line in UNIVERSE.lines()
    )


def test_billing_lines_of_chosen_types(sandbox):
    adapter = make_adapter(sandbox)
    lines = [line for p in adapter.iter_billing_lines(["2"]) for line in p.items]
    expected = expected_lines({"Security Awareness Training"})
    assert sorted(int(line.external_id) for line in lines) == sorted(expected)
    assert {line.container.type_name for line in lines} == {"Security Awareness Training"}
    agreements = [c for c in UNIVERSE.containers if c.type_name == "Security Awareness Training"]
    assert len(agreements) == 51
    assert adapter.requests == 2 + 51  # 51 agreements: 2 pages of 50


def test_read_only_reasons_of_cancelled_lines(sandbox):
    today = datetime.date.today()
    lines = {
        line.external_id: line
        for p in make_adapter(sandbox).iter_billing_lines([])
        for line in p.items
    }
    for container, line in expected_lines().values():
        record = lines[str(line.id)]
        if container.status == "Cancelled":
            assert record.read_only_reason == (
                "ConnectWise does not change the additions of a cancelled agreement."
            )
        elif line.cancelled_date and line.cancelled_date <= today:
            assert record.read_only_reason == "ConnectWise does not change a cancelled addition."
        else:
            assert record.read_only_reason == ""


def test_a_full_import_of_the_demo_partner_at_the_default_page_size(sandbox):
    adapter = make_adapter(sandbox, codebase="", page_size=None)
    assert adapter.test().settings == {"codebase": "v2025_1/"}
    assert len(adapter.container_types()) == 4
    assert sum(len(p.items) for p in adapter.iter_companies()) == 168
    assert sum(len(p.items) for p in adapter.iter_products()) == 20
    pages = list(adapter.iter_billing_lines([]))
    assert [len(p.items) for p in pages] == [548]
    # companyinfo + count + types + companies + catalogue + agreements + 193 addition lists
    assert adapter.requests == state(sandbox)["requests"] == 6 + 193


# --- faults ----------------------------------------------------------------------------------


def test_rate_limit_is_waited_out_and_paging_goes_on(sandbox, settings):
    settings.TRUEUP_HTTP_MAX_RETRY_WAIT = 3
    faults(sandbox, rate_limit_per_minute=2)
    lift = threading.Timer(1.0, faults, args=(sandbox,), kwargs={"rate_limit_per_minute": None})
    lift.start()
    try:
        companies = [
            c for p in make_adapter(sandbox, concurrency=1).iter_companies() for c in p.items
        ]
    finally:
        lift.cancel()
    assert len(companies) == 168
    after = state(sandbox)
    assert after["rate_limited"] == 1
    assert after["requests"] == 5  # 4 pages, the third one twice


def test_rate_limit_that_does_not_end_is_reported(sandbox, settings):
    settings.TRUEUP_HTTP_MAX_RETRY_WAIT = 0.5
    faults(sandbox, rate_limit_per_minute=1)
    pages = make_adapter(sandbox, concurrency=1).iter_companies()
    first_page = [c for c in sorted(UNIVERSE.companies, key=lambda c: c.id)][:50]
    assert len(next(pages).items) == len([c for c in first_page if c.company_type != "Vendor"])
    with pytest.raises(RateLimited, match=r"rate limiting requests \(HTTP 429\)"):
        next(pages)
    assert state(sandbox)["rate_limited"] == 2  # the first answer and the one retry


def test_gateway_error_is_retried(sandbox):
    faults(sandbox, fail_on_requests=[2], fail_status=503)
    companies = [c for p in make_adapter(sandbox, concurrency=1).iter_companies() for c in p.items]
    assert len(companies) == 168
    assert state(sandbox)["requests"] == 5


def test_server_error_in_the_middle_of_paging(sandbox):
    # Request 1 is the first agreements page, 2-51 its additions, 52 the second page.
    faults(sandbox, fail_on_requests=[52], fail_status=500)
    pages = make_adapter(sandbox).iter_billing_lines([])
    first = next(pages)
    assert first.number == 1
    assert len(first.items) == sum(len(c.lines) for c in UNIVERSE.containers[:50])
    with pytest.raises(ServerFault) as error:
        next(pages)
    assert str(error.value).endswith(
        "answered with a server error (HTTP 500): An unexpected error occurred on the server."
    )


def test_a_missing_addition_is_a_bad_answer(sandbox):
    with pytest.raises(BadAnswer, match=r"HTTP 404 .*Addition with id 1 was not found"):
        make_adapter(sandbox).read_line(LineKey(container_id="100", line_id="1"))


# --- writing ---------------------------------------------------------------------------------


def writable_line():
    return next(
        line
        for container in UNIVERSE.containers
        if container.status == "Active"
        for line in container.lines
        if line.cancelled_date is None and line.quantity != 42
    )


def test_write_then_read_shows_the_new_quantity(sandbox):
    line = writable_line()
    adapter = make_adapter(sandbox)
    before = adapter.read_line(key_of(line))
    assert before.quantity == Decimal(line.quantity)
    assert before.container.company_external_id == str(
        next(c for c in UNIVERSE.containers if c.id == line.container_id).company_id
    )
    answer = adapter.write_quantity(
        key_of(line), before.quantity, Decimal(42), datetime.date.today()
    )
    assert answer.status_code == 200
    assert '"quantity":42.0' in answer.body.replace(" ", "")
    after = adapter.read_line(key_of(line))
    assert after.quantity == Decimal(42)
    assert after.raw["billedQuantity"] == 42.0 - line.less_included
    writes = state(sandbox)["writes"]
    assert [(w["method"], w["id"], w["changes"]) for w in writes] == [
        ("PATCH", line.id, {"quantity": [float(line.quantity), 42.0]})
    ]


def test_fractional_quantities_are_sent_exactly(sandbox):
    line = writable_line()
    adapter = make_adapter(sandbox)
    adapter.write_quantity(key_of(line), Decimal(0), Decimal("12.5"), datetime.date.today())
    assert adapter.read_line(key_of(line)).quantity == Decimal("12.5")


def test_repeating_a_write_leaves_the_quantity_unchanged(sandbox):
    line = writable_line()
    adapter = make_adapter(sandbox)
    adapter.write_quantity(key_of(line), Decimal(line.quantity), Decimal(42), datetime.date.today())
    adapter.write_quantity(key_of(line), Decimal(line.quantity), Decimal(42), datetime.date.today())
    assert adapter.read_line(key_of(line)).quantity == Decimal(42)
    writes = state(sandbox)["writes"]
    assert [w["changes"] for w in writes] == [{"quantity": [float(line.quantity), 42.0]}, {}]


def test_writing_to_a_cancelled_addition_is_rejected_with_connectwise_message(sandbox):
    today = datetime.date.today()
    line = next(
        line
        for container in UNIVERSE.containers
        if container.status == "Active"
        for line in container.lines
        if line.cancelled_date and line.cancelled_date <= today
    )
    with pytest.raises(WriteRejected) as error:
        make_adapter(sandbox).write_quantity(key_of(line), Decimal(1), Decimal(5), today)
    assert str(error.value) == (
        "ConnectWise refused the change (HTTP 400): addition object is invalid: "
        "A cancelled addition cannot be updated."
    )
    assert error.value.status_code == 400
    assert '"code":"InvalidObject"' in error.value.body
    assert state(sandbox)["writes"] == []


def test_writing_to_a_cancelled_agreement_is_rejected(sandbox):
    container = next(c for c in UNIVERSE.containers if c.status == "Cancelled")
    with pytest.raises(WriteRejected, match="Additions of a cancelled agreement cannot be changed"):
        make_adapter(sandbox).write_quantity(
            key_of(container.lines[0]), Decimal(1), Decimal(5), datetime.date.today()
        )


def test_a_refused_write_is_not_retried(sandbox):
    line = writable_line()
    faults(sandbox, reject_writes="The agreement is locked for invoicing.")
    with pytest.raises(WriteRejected, match="The agreement is locked for invoicing."):
        make_adapter(sandbox).write_quantity(
            key_of(line), Decimal(1), Decimal(5), datetime.date.today()
        )
    assert state(sandbox)["requests"] == 1
