"""Connecting a PSA from the browser, importing, browsing, and the failure cases."""

import pytest
from django.urls import reverse

from psa.models import BillingLine, PSACompany, PSAConnection, PSAProduct, QuantityPush
from reconcile.sync.models import SyncRun
from reconcile.tenancy.models import AuditEvent, Role
from sandboxes import connectwise, psa_data
from tests.conftest import login

pytestmark = pytest.mark.django_db
UNIVERSE = psa_data.universe("demo")


def cw_form(base_url, **overrides):
    c = connectwise.demo_credentials(base_url)
    return {
        "site": c["site"],
        "company_id": c["company_id"],
        "public_key": c["public_key"],
        "private_key": c["private_key"],
        "client_id": c["client_id"],
        "codebase": "",
        "description": "",
    } | overrides


def test_test_connection_answers_before_anything_is_saved(owner_client, sandbox):
    url = reverse("psa:test", args=["connectwise"])
    ok = owner_client.post(url, cw_form(sandbox.base_url), HTTP_HX_REQUEST="true")
    assert "ConnectWise accepted the keys" in ok.content.decode()
    bad = owner_client.post(
        url, cw_form(sandbox.base_url, private_key="wrong"), HTTP_HX_REQUEST="true"
    )
    assert "rejected the public/private key pair" in bad.content.decode()
    assert not PSAConnection.objects.exists()


def test_connect_choose_types_and_import(owner_client, sandbox, django_capture_on_commit_callbacks):
    response = owner_client.post(
        reverse("psa:connect", args=["connectwise"]), cw_form(sandbox.base_url)
    )
    connection = PSAConnection.objects.get()
    assert response.url == reverse("psa:types", args=[connection.pk])
    assert connection.settings["codebase"] == "v2025_1/"  # discovered
    assert "private_key" not in str(connection.settings) and connection.secrets()["private_key"]
    types_page = owner_client.get(response.url)
    choices = types_page.context["form"].fields["types"].choices
    assert len(choices) > 1 and "recommend all" in types_page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(response.url, {"types": [value for value, _ in choices]})
    connection.refresh_from_db()
    assert connection.state == PSAConnection.State.ACTIVE
    assert BillingLine.objects.filter(connection=connection).count() == len(UNIVERSE.lines())
    assert PSAProduct.objects.filter(connection=connection).count() == len(UNIVERSE.products)
    assert SyncRun.objects.get().added == len(UNIVERSE.lines())
    assert (
        AuditEvent.objects.filter(action__in=["connection.created", "psa.types_chosen"]).count()
        == 2
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"private_key": "wrong"}, "rejected the public/private key pair"),
        ({"codebase": "v9_9"}, "has no codebase v9_9"),
        ({"site": "http://127.0.0.1:9"}, "127.0.0.1:9"),
        ({"site": "not a url"}, "Enter a valid URL"),
        ({"private_key": "has space"}, "cannot contain spaces"),
    ],
)
def test_wrong_credentials_say_what_was_wrong_and_save_nothing(
    owner_client, sandbox, overrides, message
):
    response = owner_client.post(
        reverse("psa:connect", args=["connectwise"]), cw_form(sandbox.base_url, **overrides)
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PSAConnection.objects.exists()


def test_products_are_searchable_by_product_id(make_psa_connection, owner_client):
    connection = make_psa_connection("connectwise")
    product = next(p for p in UNIVERSE.products if p.identifier.startswith("KB4-"))
    response = owner_client.get(
        reverse("psa:products", args=[connection.pk]),
        {"q": product.identifier},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="results",
    )
    page = response.content.decode()
    assert product.name in page and "<html" not in page
    assert len(response.context["page"].object_list) == 1


def test_read_only_halo_lines_say_why(make_psa_connection, owner_client):
    connection = make_psa_connection("halo")
    read_only = BillingLine.objects.filter(connection=connection).exclude(read_only_reason="")
    assert read_only.count() == sum(1 for line in UNIVERSE.lines() if line.calculated)
    company = read_only.first().company.name
    page = owner_client.get(reverse("psa:lines", args=[connection.pk]), {"q": company})
    assert "Halo calculates this quantity" in page.content.decode()


def test_a_5xx_while_paging_fails_the_run_and_keeps_the_last_good_import(
    make_psa_connection, owner_client, psa_faults, psa_state, django_capture_on_commit_callbacks
):
    connection = make_psa_connection("connectwise", page_size=50)
    good = dict(BillingLine.objects.values_list("external_id", "quantity"))
    PSAConnection.objects.update(min_manual_interval=0)
    psa_faults("connectwise", fail_on_requests=[psa_state("connectwise")["requests"] + 6])
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("sync:sync_now", args=["psa", connection.pk]))
    connection.refresh_from_db()
    assert connection.state == PSAConnection.State.ERROR
    assert SyncRun.objects.first().state == SyncRun.State.FAILED
    assert dict(BillingLine.objects.values_list("external_id", "quantity")) == good
    assert BillingLine.objects.filter(missing_since__isnull=False).count() == 0


@pytest.mark.parametrize("role", [Role.BILLING, Role.FINANCE, Role.VIEWER])
def test_only_owners_connect_a_psa(client, member_factory, sandbox, role):
    login(client, member_factory(role))
    assert client.get(reverse("psa:connect", args=["connectwise"])).status_code == 403
    assert (
        client.post(
            reverse("psa:test", args=["connectwise"]), cw_form(sandbox.base_url)
        ).status_code
        == 403
    )
    assert not PSAConnection.objects.exists()


def test_unknown_psa_kind_is_a_404(owner_client):
    assert owner_client.get(reverse("psa:connect", args=["kaseya"])).status_code == 404


def test_outsiders_get_404_for_every_psa_page(make_psa_connection, client, outsider):
    connection = make_psa_connection("connectwise")
    login(client, outsider)
    for name in ["detail", "types", "companies", "products", "lines", "rotate", "disconnect"]:
        assert client.get(reverse(f"psa:{name}", args=[connection.pk])).status_code == 404, name
    assert (
        client.post(
            reverse("psa:disconnect", args=[connection.pk]), {"name": connection.confirm_name}
        ).status_code
        == 404
    )
    assert (
        client.get(reverse("sync:connection_status", args=["psa", connection.pk])).status_code
        == 404
    )
    assert PSAConnection.objects.filter(pk=connection.pk).exists()


def test_disconnect_deletes_imported_data_but_keeps_the_push_ledger(
    make_psa_connection, owner_client, owner
):
    from datetime import date

    from psa import services

    connection = make_psa_connection("connectwise")
    line = BillingLine.objects.filter(connection=connection, read_only_reason="").first()
    services.set_quantity(line, line.quantity + 1, date.today(), owner)
    url = reverse("psa:disconnect", args=[connection.pk])
    assert owner_client.post(url, {"name": "nope"}).status_code == 200  # wrong name: kept
    assert PSAConnection.objects.exists()
    response = owner_client.post(url, {"name": connection.confirm_name})
    assert response.status_code == 302
    for model in (PSAConnection, PSACompany, PSAProduct, BillingLine):
        assert not model.objects.exists(), model
    push = QuantityPush.objects.get()
    assert push.line is None and push.line_repr
    assert AuditEvent.objects.filter(action="connection.disconnected").exists()


def test_the_ledger_shows_an_unconfirmed_push_in_red(
    make_psa_connection, owner_client, owner, psa_faults, django_assert_max_num_queries
):
    from datetime import date

    from psa import services

    connection = make_psa_connection("connectwise")
    line = BillingLine.objects.filter(connection=connection, read_only_reason="").first()
    psa_faults("connectwise", ignore_writes=True)
    services.set_quantity(line, line.quantity + 3, date.today(), owner)
    ledger = owner_client.get(reverse("psa:pushes", args=[connection.pk])).content.decode()
    assert 'class="badge push-unconfirmed"' in ledger and "now bills" in ledger
    with django_assert_max_num_queries(12):
        lines = owner_client.get(
            reverse("psa:lines", args=[connection.pk]), {"q": line.company.name}
        )
    assert 'class="badge push-unconfirmed"' in lines.content.decode()


def test_rotating_credentials_tests_the_new_ones_first(make_psa_connection, owner_client, sandbox):
    connection = make_psa_connection("connectwise")
    url = reverse("psa:rotate", args=[connection.pk])
    old = connection.secrets()
    response = owner_client.post(url, cw_form(sandbox.base_url, private_key="wrong"))
    assert "rejected the public/private key pair" in response.content.decode()
    connection.refresh_from_db()
    assert connection.secrets() == old
    response = owner_client.post(url, cw_form(sandbox.base_url, codebase="v2025_1"))
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.secrets() == old and connection.settings["codebase"] == "v2025_1/"
    event = AuditEvent.objects.get(action="connection.credentials_rotated")
    assert old["private_key"] not in str(event.before) + str(event.after)
