import pytest
from django.urls import reverse

from integrations.models import VendorAccount
from psa.models import PSACompany
from reconcile.mapping.models import (
    AccountMapping,
    MappingState,
    RejectedSuggestion,
    ServiceMapping,
    Source,
)
from reconcile.tenancy.models import AuditEvent, Role
from tests.conftest import login
from tests.factories import PSACompanyFactory, VendorAccountFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def board(organization):
    acme = VendorAccountFactory(connection__organization=organization, name="Acme Corp")
    henderson = VendorAccountFactory(connection=acme.connection, name="Henderson Dental Care, P.C.")
    companies = {
        name: PSACompanyFactory(connection__organization=organization, name=name)
        for name in ["Acme Capital", "Henderson Dental Care PC", "Blue Harbor Dental"]
    }
    return acme, henderson, companies


def test_the_page_counts_unmapped_and_shows_suggestions_with_scores(owner_client, board):
    acme, henderson, companies = board
    page = owner_client.get(reverse("mapping:accounts"))
    html = page.content.decode()
    assert "2 unmapped" in html
    assert "Suggested: <strong>Henderson Dental Care PC</strong>" in html
    assert "Suggested: <strong>Acme Capital</strong>" not in html  # a look-alike is no suggestion
    suggested = {account.pk for account in page.context["page"] if account.suggestion}
    assert suggested == {henderson.pk}


def test_mapping_by_post_returns_the_card_and_refreshes_the_counter(owner_client, board):
    acme, _, companies = board
    response = owner_client.post(
        reverse("mapping:map", args=[acme.pk]),
        {"company_id": companies["Blue Harbor Dental"].pk},
        **HTMX,
    )
    assert response.status_code == 200 and response["HX-Trigger"] == "mapping-changed"
    assert "→ Blue Harbor Dental" in response.content.decode()
    assert AccountMapping.objects.get(vendor_account=acme).source == Source.MANUAL
    assert owner_client.get(reverse("mapping:unmapped_counter")).content == b"1 unmapped"
    # mapping again moves it
    owner_client.post(
        reverse("mapping:map", args=[acme.pk]), {"company_id": companies["Acme Capital"].pk}, **HTMX
    )
    assert AccountMapping.objects.get(vendor_account=acme).psa_company.name == "Acme Capital"
    assert AuditEvent.objects.filter(action="mapping.account_mapped").count() == 2


def test_accept_reject_exclude_and_unmap(owner_client, board):
    acme, henderson, companies = board
    target = companies["Henderson Dental Care PC"]
    owner_client.post(reverse("mapping:reject", args=[henderson.pk]), {"company_id": target.pk})
    assert RejectedSuggestion.objects.filter(vendor_account=henderson).count() == 1
    response = owner_client.post(
        reverse("mapping:accept", args=[henderson.pk]),
        {"company_id": target.pk, "score": "96.5"},
        **HTMX,
    )
    mapping = AccountMapping.objects.get(vendor_account=henderson)
    assert (mapping.source, mapping.score) == (Source.SUGGESTION, 96.5)
    assert "→ Henderson Dental Care PC" in response.content.decode()
    owner_client.post(reverse("mapping:exclude", args=[acme.pk]), **HTMX)
    assert AccountMapping.objects.get(vendor_account=acme).state == MappingState.EXCLUDED
    owner_client.post(reverse("mapping:unmap", args=[acme.pk]), **HTMX)
    assert not AccountMapping.objects.filter(vendor_account=acme).exists()


def test_the_keyboard_control_finds_companies(owner_client, board):
    acme, _, _ = board
    response = owner_client.get(
        reverse("mapping:company_choices", args=[acme.pk]), {"company": "harbor"}
    )
    assert "Blue Harbor Dental" in response.content.decode()


def test_bad_posts_are_refused_and_save_nothing(owner_client, board):
    acme, _, _ = board
    foreign = PSACompanyFactory(name="Other Tenant Inc")
    assert (
        owner_client.post(
            reverse("mapping:map", args=[acme.pk]), {"company_id": foreign.pk}
        ).status_code
        == 404
    )
    assert owner_client.post(reverse("mapping:map", args=[acme.pk]), {}).status_code == 400
    assert (
        owner_client.post(reverse("mapping:map", args=[acme.pk]), {"company_id": "x"}).status_code
        == 400
    )
    assert not AccountMapping.objects.exists()


@pytest.mark.parametrize(
    "role, status", [(Role.BILLING, 200), (Role.FINANCE, 403), (Role.VIEWER, 403)]
)
def test_only_billing_and_owners_change_mappings(client, member_factory, board, role, status):
    acme, _, companies = board
    login(client, member_factory(role))
    assert client.get(reverse("mapping:accounts")).status_code == 200
    response = client.post(
        reverse("mapping:map", args=[acme.pk]), {"company_id": companies["Acme Capital"].pk}, **HTMX
    )
    assert response.status_code == status
    assert AccountMapping.objects.exists() == (status == 200)


def test_outsiders_get_404(client, outsider, board):
    acme, _, companies = board
    login(client, outsider)
    for name in ["map", "accept", "reject", "exclude", "unmap"]:
        response = client.post(
            reverse(f"mapping:{name}", args=[acme.pk]), {"company_id": companies["Acme Capital"].pk}
        )
        assert response.status_code == 404, name
    assert client.get(reverse("mapping:company_choices", args=[acme.pk])).status_code == 404
    assert not AccountMapping.objects.exists() and not RejectedSuggestion.objects.exists()


def test_the_page_answers_with_a_constant_number_of_queries(
    owner_client, organization, board, django_assert_max_num_queries
):
    acme, _, _ = board
    VendorAccount.objects.bulk_create(
        [
            VendorAccount(
                organization=organization,
                connection=acme.connection,
                external_id=f"x{n}",
                name=f"Customer {n} LLC",
            )
            for n in range(2000)
        ]
    )
    PSACompany.objects.bulk_create(
        [
            PSACompany(
                organization=organization,
                connection=PSACompany.objects.first().connection,
                external_id=f"c{n}",
                name=f"Company {n} Inc",
            )
            for n in range(3000)
        ]
    )
    owner_client.get(reverse("mapping:accounts"))  # keys computed once
    with django_assert_max_num_queries(18):  # incl. session, membership, 2FA, banner, bell
        response = owner_client.get(reverse("mapping:accounts"))
    assert "2002 unmapped" in response.content.decode()
    with django_assert_max_num_queries(18):  # incl. session, membership, 2FA, banner, bell
        owner_client.get(reverse("mapping:accounts"), {"q": "Customer 19", "cq": "Company 7"})


@pytest.fixture
def catalog(organization, board):
    from tests.factories import PSAProductFactory, VendorServiceFactory

    acme = board[0]
    diamond = VendorServiceFactory(connection=acme.connection, name="KnowBe4 SAT Diamond")
    product = PSAProductFactory(
        connection__organization=organization,
        identifier="KB4-DIA-U",
        name="KnowBe4 Diamond - per user",
    )
    return diamond, product


def test_services_are_found_by_product_id_and_mapped(owner_client, catalog):
    diamond, product = catalog
    found = owner_client.get(
        reverse("mapping:product_choices", args=[diamond.pk]), {"product": "KB4-DIA"}
    )
    assert "KnowBe4 Diamond - per user" in found.content.decode()
    response = owner_client.post(
        reverse("mapping:map_service", args=[diamond.pk]), {"product_id": product.pk}, **HTMX
    )
    assert "KB4-DIA-U" in response.content.decode()
    mapping = diamond.mappings.get()
    owner_client.post(reverse("mapping:unmap_service", args=[mapping.pk]), **HTMX)
    assert not diamond.mappings.exists()
    owner_client.post(reverse("mapping:exclude_service", args=[diamond.pk]), **HTMX)
    assert diamond.mappings.get().state == MappingState.EXCLUDED
    page = owner_client.get(reverse("mapping:services"), {"pq": "KB4-DIA"})
    assert "KnowBe4 Diamond - per user" in page.content.decode()


def test_a_service_is_not_mapped_to_another_tenants_product(owner_client, catalog):
    from tests.factories import PSAProductFactory

    diamond, _ = catalog
    foreign = PSAProductFactory(name="Foreign product")
    assert (
        owner_client.post(
            reverse("mapping:map_service", args=[diamond.pk]), {"product_id": foreign.pk}
        ).status_code
        == 404
    )
    assert not diamond.mappings.exists()


def test_accept_all_above_a_score_shows_the_list_first(owner_client, board):
    _, henderson, companies = board
    preview = owner_client.get(reverse("mapping:accept_all"), {"minimum": "90"})
    assert [a.pk for a, _, _ in preview.context["pairs"]] == [henderson.pk]
    assert not AccountMapping.objects.exists()
    owner_client.post(reverse("mapping:accept_all"), {"minimum": "90", "confirm": "1"})
    assert AccountMapping.objects.get().psa_company == companies["Henderson Dental Care PC"]
    event = AuditEvent.objects.get(action="mapping.suggestions_accepted")
    assert event.after["count"] == 1
    assert owner_client.get(reverse("mapping:accept_all"), {"minimum": "10"}).context["form"].errors


def test_the_wizard_auto_maps_once_and_finish_needs_one_account_and_one_service(
    owner_client, organization, board, catalog, django_capture_on_commit_callbacks
):
    from reconcile.sync.models import SyncRun

    acme, _, companies = board
    connection = acme.connection
    exact = VendorAccountFactory(connection=connection, name="blue harbor dental")
    page = owner_client.get(reverse("mapping:accounts"), {"setup": connection.pk}, follow=True)
    assert "1 customer was mapped automatically" in page.content.decode()
    assert AccountMapping.objects.get(vendor_account=exact).source == Source.AUTO

    services_page = owner_client.get(reverse("mapping:services"), {"setup": connection.pk})
    assert "Finish — map at least one service to finish." in services_page.content.decode()
    refused = owner_client.post(reverse("mapping:finish", args=[connection.pk]), follow=True)
    assert "Map at least one service to finish." in refused.content.decode()
    connection.refresh_from_db()
    assert connection.setup_finished_at is None

    diamond, product = catalog
    owner_client.post(reverse("mapping:map_service", args=[diamond.pk]), {"product_id": product.pk})
    with django_capture_on_commit_callbacks(execute=False):
        done = owner_client.post(reverse("mapping:finish", args=[connection.pk]))
    assert done.status_code == 302
    connection.refresh_from_db()
    assert connection.setup_finished_at is not None
    assert SyncRun.objects.get(vendor_connection=connection).trigger == SyncRun.Trigger.FINISH


def test_the_wizard_maps_identical_service_names_on_the_first_setup(
    owner_client, organization, board
):
    from tests.factories import PSAProductFactory, VendorServiceFactory

    connection = board[0].connection
    service = VendorServiceFactory(connection=connection, name="Compliance Plus")
    product = PSAProductFactory(connection__organization=organization, name="COMPLIANCE  PLUS")
    page = owner_client.get(reverse("mapping:services"), {"setup": connection.pk})
    assert "1 service was mapped automatically" in page.content.decode()
    assert ServiceMapping.objects.get(vendor_service=service).psa_product == product


def test_a_cached_account_card_shows_every_change_behind_it(owner_client, board):
    acme, henderson, companies = board
    url = reverse("mapping:accounts")
    assert "Suggested: <strong>Henderson Dental Care PC</strong>" in owner_client.get(url).text
    PSACompany.objects.filter(pk=companies["Henderson Dental Care PC"].pk).update(
        name="Henderson Dental Care P.C."
    )
    assert "Suggested: <strong>Henderson Dental Care P.C.</strong>" in owner_client.get(url).text
    VendorAccount.objects.filter(pk=acme.pk).update(active_users=77)
    assert "77 active users" in owner_client.get(url).text
    AccountMapping.objects.create(
        organization=acme.organization,
        vendor_account=acme,
        psa_company=companies["Acme Capital"],
        state=MappingState.MAPPED,
        source=Source.MANUAL,
    )
    text = owner_client.get(url, {"filter": "all"}).text
    assert "→ Acme Capital" in text


def test_a_cached_suggestion_posts_the_company_it_names(owner_client, board):
    """Two PSA companies may share a name: the Accept button must carry the suggested one."""
    _, henderson, companies = board
    suggested = companies["Henderson Dental Care PC"]
    url = reverse("mapping:accounts")
    assert f'"company_id": "{suggested.pk}"' in owner_client.get(url).text
    twin = PSACompanyFactory(connection=suggested.connection, name=suggested.name)
    RejectedSuggestion.objects.create(
        organization=henderson.organization, vendor_account=henderson, psa_company=suggested
    )
    text = owner_client.get(url).text
    assert f'"company_id": "{twin.pk}"' in text and f'"company_id": "{suggested.pk}"' not in text
