"""The KnowBe4 partner adapter against the sandbox, over real HTTP."""

import pytest

from integrations.providers.knowbe4_partner.adapter import PartnerAdapter
from reconcile.core.errors import (
    BadAnswer,
    CredentialRejected,
    RateLimited,
    ServerFault,
    Unreachable,
)
from sandboxes.data import PARTNERS, customers, partner_by_slug


def adapter(sandbox, slug="demo", region="us", per=100):
    return PartnerAdapter(
        base_url=sandbox.graphql_url(region), credential=partner_by_slug(slug).key, per=per
    )


def fetch(partner_adapter):
    return [record for page in partner_adapter.iter_account_pages() for record in page.accounts]


@pytest.mark.parametrize("schema", ["2023", "current"])
def test_reads_every_account_on_every_page_in_both_schema_generations(sandbox, schema):
    sandbox.set_key(sandbox.demo_key, schema=schema)
    partner = adapter(sandbox, per=25)
    pages = list(partner.iter_account_pages())
    assert [page.number for page in pages] == [1, 2, 3, 4, 5, 6, 7]
    assert {page.total_pages for page in pages} == {7}
    records = [record for page in pages for record in page.accounts]
    truth = {str(c.id): c for c in customers("demo")}
    assert len(records) == 160 and {r.external_id for r in records} == set(truth)
    for record in records:
        customer = truth[record.external_id]
        assert record.name == customer.name.strip()  # real data has stray spaces
        assert record.active_users == customer.active_users  # archived users never count
        assert record.seats == customer.seats
        assert record.status == ("archived" if customer.archived else "active")
        assert record.usage[0].code == "sat-" + customer.subscription_level.lower()
    assert partner.api_schema == schema


def test_test_reports_the_account_count(sandbox):
    check = adapter(sandbox).test()
    assert check.account_count == 160
    assert check.api_schema == "2023"
    assert "160 customer accounts" in check.message


def test_add_on_skus_become_services(sandbox):
    records = fetch(adapter(sandbox))
    with_addons = [c for c in customers("demo") if c.skus]
    assert with_addons, "the sandbox seeds customers with add-ons"
    record = next(r for r in records if r.external_id == str(with_addons[0].id))
    assert {u.code for u in record.usage} >= {"sku-" + s.lower() for s in with_addons[0].skus}


@pytest.mark.parametrize("slug, region", [("revoked", "us"), ("demo", "eu")])
def test_rejected_or_wrong_region_key_is_a_credential_error(sandbox, slug, region):
    with pytest.raises(CredentialRejected, match="rejected the API key"):
        adapter(sandbox, slug, region).test()


def test_429_is_retried_after_retry_after_and_the_import_completes(sandbox):
    throttled = partner_by_slug("throttled")
    records = fetch(adapter(sandbox, "throttled", per=25))
    assert len(records) == throttled.size
    state = sandbox.key_state(throttled.key)
    assert state["request_count"] > 7, "some requests were answered 429 and sent again"


def test_persistent_429_ends_in_a_rate_limit_error(sandbox, settings):
    settings.TRUEUP_HTTP_RETRIES = 1
    settings.TRUEUP_HTTP_MAX_RETRY_WAIT = 1
    sandbox.set_key(sandbox.demo_key, rate_limit_per_minute=2)
    with pytest.raises(RateLimited, match="rate limiting"):
        fetch(adapter(sandbox, per=25))


def test_server_error_mid_paging_is_a_vendor_fault(sandbox):
    flaky = partner_by_slug("flaky")  # its 3rd request answers 500: introspection, page 1, page 2
    partner = adapter(sandbox, "flaky", per=25)
    pages = partner.iter_account_pages()
    assert len(next(pages).accounts) == 25
    with pytest.raises(ServerFault, match="HTTP 500"):
        next(pages)
    assert flaky.size == 150


def test_html_answer_means_knowbe4_was_not_reached(sandbox):
    sandbox.set_key(sandbox.demo_key, html_errors=True, fail_on_requests=[1])
    with pytest.raises(Unreachable, match="web page"):
        adapter(sandbox).test()


def test_html_site_instead_of_the_api(sandbox):
    partner = PartnerAdapter(base_url=sandbox.base_url + "/knowbe4/us/", credential="x" * 40)
    with pytest.raises(Unreachable, match="Could not reach KnowBe4"):
        partner.test()


def test_unreachable_host(sandbox):
    partner = PartnerAdapter(base_url="http://127.0.0.1:9/graphql", credential="x" * 40)
    with pytest.raises(Unreachable, match="connection was refused"):
        partner.test()


def test_slow_answer_times_out(sandbox, settings):
    settings.TRUEUP_HTTP_TIMEOUT = 0.5
    settings.TRUEUP_HTTP_RETRIES = 0
    with pytest.raises(Unreachable, match="no answer within 0.5 seconds"):
        adapter(sandbox, "slow").test()


def test_numbers_typed_as_strings_or_junk_are_parsed_defensively():
    from integrations.providers.knowbe4_partner.adapter import to_int

    assert [to_int(v) for v in ["50", " 12 ", "7.0", None, "", "n/a", 3]] == [
        50,
        12,
        7,
        None,
        None,
        None,
        3,
    ]


def test_an_account_without_id_is_a_bad_answer():
    partner = PartnerAdapter(base_url="http://unused", credential="k")
    with pytest.raises(BadAnswer):
        partner._record({"companyName": "No Id Inc"}, "2023")


def test_every_partner_key_is_in_one_region():
    assert {p.region for p in PARTNERS.values()} <= {"us", "eu", "ca", "uk", "de"}
