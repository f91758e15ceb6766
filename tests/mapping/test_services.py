import pytest
from django.utils import timezone

from psa.models import PSACompany
from reconcile.mapping import services
from reconcile.mapping.models import (
    AccountMapping,
    MappingState,
    MatchAlias,
    RejectedSuggestion,
    ServiceMapping,
    Source,
)
from reconcile.tenancy.models import AuditEvent
from tests.factories import (
    PSACompanyFactory,
    PSAProductFactory,
    VendorAccountFactory,
    VendorServiceFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(organization):
    return lambda name, **kw: VendorAccountFactory(
        connection__organization=organization, name=name, **kw
    )


@pytest.fixture
def company(organization):
    return lambda name: PSACompanyFactory(connection__organization=organization, name=name)


def test_keys_are_computed_once_and_again_after_a_rename(organization, account):
    acme = account("The Acme Co., Inc.")
    assert services.refresh_keys(type(acme), organization) == 1
    assert services.refresh_keys(type(acme), organization) == 0
    acme.refresh_from_db()
    assert (acme.name_core, acme.keys_for) == ("acme", "The Acme Co., Inc.")
    acme.name = "Acme Holdings"
    acme.save()
    assert services.refresh_keys(type(acme), organization) == 1


def test_auto_map_only_on_equal_names_or_confirmed_aliases(organization, owner, account, company):
    exact = account("Blue  Harbor Dental")
    sister = account("Acme Inc")
    twice = account("River Clinic")
    aliased = account("JNR Holdings")
    harbor = company("BLUE HARBOR DENTAL")
    company("Acme LLC")
    company("River Clinic")
    company("river clinic")
    jnr = company("J.N.R. Holdings, LLC")
    MatchAlias.objects.create(
        organization=organization, vendor_name="jnr holdings", psa_company=jnr
    )
    created = services.auto_map(organization, owner)
    mapped = {m.vendor_account_id: (m.psa_company_id, m.source) for m in created}
    assert mapped == {exact.pk: (harbor.pk, Source.AUTO), aliased.pk: (jnr.pk, Source.ALIAS)}
    assert not AccountMapping.objects.filter(vendor_account__in=[sister, twice]).exists()
    event = AuditEvent.objects.get(action="mapping.auto_mapped")
    assert event.after["count"] == 2 and len(event.after["pairs"]) == 2


def test_mapping_moves_and_is_audited(owner, account, company):
    customer = account("Smith & Sons")
    first, second = company("Smith and Sons"), company("Smith & Sons Plumbing")
    services.map_account(customer, first, owner)
    services.map_account(customer, second, owner)
    assert AccountMapping.objects.get().psa_company == second
    moved = AuditEvent.objects.filter(action="mapping.account_mapped").order_by("id").last()
    assert moved.before["company"] == "Smith and Sons"
    assert moved.after["company"] == "Smith & Sons Plumbing"


def test_objects_of_two_organizations_are_never_mapped(owner, account):
    other = PSACompanyFactory(name="Elsewhere Inc")
    with pytest.raises(ValueError):
        services.map_account(account("Elsewhere Inc"), other, owner)
    assert not AccountMapping.objects.exists()


def test_excluded_accounts_leave_the_unmapped_count(organization, owner, account):
    lab = account("Internal Lab")
    account("Somebody Else")
    services.exclude_account(lab, owner)
    assert services.unmapped_accounts(organization).count() == 1
    assert AccountMapping.objects.get().state == MappingState.EXCLUDED
    services.unmap_account(AccountMapping.objects.get(), owner)
    assert services.unmapped_accounts(organization).count() == 2


def test_suggestions_rejections_and_aliases(organization, owner, account, company):
    variant = account("Henderson Dental Care, P.C.")
    lookalike = account("Acme Corp")
    henderson = company("Henderson Dental Care PC")
    company("Acme Capital")
    found = {a.pk: (c.pk, score) for a, c, score, _ in services.suggestions(organization)}
    assert variant.pk in found and found[variant.pk][0] == henderson.pk
    assert found[variant.pk][1] >= 90
    assert lookalike.pk not in found

    services.reject_suggestion(variant, henderson, owner)
    assert variant.pk not in {a.pk for a, *_ in services.suggestions(organization)}
    assert RejectedSuggestion.objects.count() == 1

    RejectedSuggestion.objects.all().delete()
    services.accept_suggestion(variant, henderson, owner, score=found[variant.pk][1])
    assert AccountMapping.objects.get(vendor_account=variant).source == Source.SUGGESTION
    twin = account("Henderson Dental Care, P.C.")  # the same customer under a second key
    services.auto_map(organization, owner)
    assert AccountMapping.objects.get(vendor_account=twin).source == Source.ALIAS


def test_suggestions_follow_every_change_of_the_companies(organization, owner, account, company):
    """Best candidates are cached under a digest of the companies: a change shows at once."""
    variant = account("Henderson Dental Care, P.C.")
    henderson = company("Henderson Dental Care PC")

    def suggested():
        return {a.pk: c.pk for a, c, *_ in services.suggestions(organization)}.get(variant.pk)

    assert suggested() == henderson.pk
    assert suggested() == henderson.pk  # from the cache
    PSACompany.objects.filter(pk=henderson.pk).update(name="Zenith Plumbing Supply")
    assert suggested() is None  # renamed: its keys are refreshed, nothing near is left
    closer = company("Henderson Dental Care P.C.")
    assert suggested() == closer.pk
    PSACompany.objects.filter(pk=closer.pk).update(missing_since=timezone.now())
    assert suggested() is None  # gone from the PSA


def test_accepting_several_suggestions_is_one_audit_event(organization, owner, account, company):
    pairs = [(account(f"Clinic {n} LLC"), company(f"Clinic {n}, L.L.C."), 95.0) for n in (1, 2)]
    assert services.accept_suggestions(organization, pairs, owner) == 2
    event = AuditEvent.objects.get(action="mapping.suggestions_accepted")
    assert [pair["account"] for pair in event.after["pairs"]] == ["Clinic 1 LLC", "Clinic 2 LLC"]


def test_services_map_to_products_and_several_may_share_one(organization, owner):
    diamond = VendorServiceFactory(connection__organization=organization, name="SAT Diamond")
    platinum = VendorServiceFactory(connection__organization=organization, name="SAT Platinum")
    seat = PSAProductFactory(connection__organization=organization, name="KnowBe4 seat")
    services.map_service(diamond, seat, owner)
    services.map_service(platinum, seat, owner)
    assert ServiceMapping.objects.filter(psa_product=seat).count() == 2
    services.exclude_service(platinum, owner)
    assert ServiceMapping.objects.get(vendor_service=platinum).state == MappingState.EXCLUDED
    services.unmap_service(ServiceMapping.objects.get(vendor_service=diamond), owner)
    assert not ServiceMapping.objects.filter(vendor_service=diamond).exists()
    other = PSAProductFactory(name="Elsewhere seat")
    with pytest.raises(ValueError):
        services.map_service(diamond, other, owner)


def test_services_auto_map_on_equal_names(organization, owner):
    VendorServiceFactory(connection__organization=organization, name="PhishER Plus")
    PSAProductFactory(connection__organization=organization, name="phisher plus")
    PSAProductFactory(connection__organization=organization, name="PhishER Plus add-on")
    assert services.auto_map_services(organization, owner) == 1
