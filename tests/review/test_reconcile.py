from decimal import Decimal

import pytest
from django.utils import timezone

from integrations.models import UsageSnapshot, VendorConnection
from psa.models import BillingLine, PSAConnection
from reconcile.mapping.models import AccountMapping, ServiceMapping
from reconcile.review.models import BillingRule, CountHistory, SeatDiscrepancy
from reconcile.review.services import reconcile_organization
from reconcile.sync import services as lifecycle
from tests.factories import (
    BillingLineFactory,
    PSACompanyFactory,
    PSAProductFactory,
    UsageSnapshotFactory,
    VendorAccountFactory,
    VendorServiceFactory,
)

pytestmark = pytest.mark.django_db
Kind = SeatDiscrepancy.Kind


@pytest.fixture
def world(organization):
    """One customer using 48 seats of Diamond, mapped; the PSA bills 50 at 3.00 a month."""
    account = VendorAccountFactory(connection__organization=organization, active_users=48)
    usage = UsageSnapshotFactory(account=account, active_users=48)
    line = BillingLineFactory(
        container__connection__organization=organization, quantity=50, unit_price=3
    )
    AccountMapping.objects.create(
        organization=organization,
        vendor_account=account,
        psa_company=line.company,
        state="mapped",
        source="manual",
    )
    ServiceMapping.objects.create(
        organization=organization,
        vendor_service=usage.service,
        psa_product=line.product,
        state="mapped",
        source="manual",
    )
    return account, usage, line


def discrepancy(line):
    return SeatDiscrepancy.objects.get(line=line)


def test_a_difference_is_a_reconcile_card_with_its_money(organization, world):
    _, _, line = world
    assert reconcile_organization(organization) == {Kind.RECONCILE: 1}
    d = discrepancy(line)
    assert (d.kind, d.vendor_count, d.billed, d.target, d.delta, d.monthly_change) == (
        Kind.RECONCILE,
        48,
        Decimal(50),
        Decimal(48),
        Decimal(-2),
        Decimal("-6.00"),
    )


def test_equal_counts_are_no_change_and_rules_apply(organization, world, owner):
    _, _, line = world
    BillingRule.objects.create(
        organization=organization,
        line=line,
        exclude_users=3,
        minimum_quantity=Decimal(46),
        updated_by=owner,
    )
    reconcile_organization(organization)
    assert (discrepancy(line).target, discrepancy(line).delta) == (Decimal(46), Decimal(-4))
    BillingRule.objects.filter(line=line).update(minimum_quantity=Decimal(50))
    reconcile_organization(organization)
    assert discrepancy(line).kind == Kind.NO_CHANGE


def test_usage_adds_up_over_accounts_and_services(organization, world):
    account, usage, line = world
    sister = VendorAccountFactory(connection=account.connection)
    UsageSnapshotFactory(account=sister, service=usage.service, active_users=10)
    AccountMapping.objects.create(
        organization=organization,
        vendor_account=sister,
        psa_company=line.company,
        state="mapped",
        source="manual",
    )
    addon = UsageSnapshotFactory(
        account=account, active_users=48, taken_at=usage.taken_at
    )  # another service, same import
    ServiceMapping.objects.create(
        organization=organization,
        vendor_service=addon.service,
        psa_product=line.product,
        state="mapped",
        source="manual",
    )
    reconcile_organization(organization)
    assert discrepancy(line).vendor_count == 48 + 48 + 10


def test_only_current_usage_counts(organization, world):
    account, usage, line = world
    usage.is_current = False  # as an import leaves the points it superseded
    usage.save()
    UsageSnapshotFactory(account=account, service=usage.service, active_users=60)
    reconcile_organization(organization)
    assert discrepancy(line).vendor_count == 60


def test_no_vendor_data_and_new_revenue(organization, world):
    account, usage, line = world
    # A mapped product whose service reports nothing: "No vendor data" ("–").
    quiet_service = VendorServiceFactory(connection=account.connection, name="SecurityCoach")
    silent = BillingLineFactory(
        container=line.container,
        product=PSAProductFactory(connection=line.connection, name="SecurityCoach - per user"),
    )
    ServiceMapping.objects.create(
        organization=organization,
        vendor_service=quiet_service,
        psa_product=silent.product,
        state="mapped",
        source="manual",
    )
    # A customer whose company has no line for the product: "New revenue".
    newcomer = VendorAccountFactory(connection=account.connection)
    UsageSnapshotFactory(account=newcomer, service=usage.service, active_users=12)
    other = PSACompanyFactory(connection=line.connection)
    AccountMapping.objects.create(
        organization=organization,
        vendor_account=newcomer,
        psa_company=other,
        state="mapped",
        source="manual",
    )
    summary = reconcile_organization(organization)
    assert summary == {Kind.RECONCILE: 1, Kind.NO_VENDOR_DATA: 1, Kind.NEW_REVENUE: 1}
    quiet = discrepancy(silent)
    assert (quiet.kind, quiet.vendor_count, quiet.delta) == (Kind.NO_VENDOR_DATA, None, None)
    new = SeatDiscrepancy.objects.get(kind=Kind.NEW_REVENUE)
    assert (new.line, new.psa_company, new.psa_product, new.vendor_count, new.monthly_change) == (
        None,
        other,
        line.product,
        12,
        12 * line.product.unit_price if line.product.unit_price else None,
    )


def test_split_lines_are_compared_together(organization, world):
    _, _, line = world
    second = BillingLineFactory(container=line.container, product=line.product, quantity=10)
    reconcile_organization(organization)
    assert (discrepancy(line).delta, discrepancy(line).target) == (Decimal(-12), Decimal(38))
    assert discrepancy(second).kind == Kind.NO_CHANGE


def test_the_largest_split_line_absorbs_a_reduction_and_no_target_is_negative(organization, world):
    _, _, small = world
    BillingLine.objects.filter(pk=small.pk).update(quantity=5)
    large = BillingLineFactory(container=small.container, product=small.product, quantity=60)
    reconcile_organization(organization)  # 48 used, 65 billed: 17 fewer, all from the big line
    assert (discrepancy(large).delta, discrepancy(large).target) == (Decimal(-17), Decimal(43))
    assert discrepancy(small).kind == Kind.NO_CHANGE
    BillingLine.objects.filter(pk=small.pk).update(quantity=50)
    UsageSnapshot.objects.update(active_users=1)
    reconcile_organization(organization)  # 1 used, 110 billed: the 60 line can go to 0 at most
    assert discrepancy(large).target == 0


def test_cancelled_lines_and_excluded_accounts_are_left_out(organization, world):
    account, _, line = world
    line.cancelled_date = timezone.localdate()
    line.save()
    AccountMapping.objects.filter(vendor_account=account).update(state="excluded", psa_company=None)
    assert reconcile_organization(organization) == {}
    assert not SeatDiscrepancy.objects.exists()


def test_query_count_does_not_grow_with_lines(organization, world, django_assert_max_num_queries):
    _, _, line = world
    for _ in range(30):
        BillingLineFactory(container=line.container, product=line.product, quantity=1)
    with django_assert_max_num_queries(12):
        reconcile_organization(organization)
    assert SeatDiscrepancy.objects.count() == 31


def test_unchanged_cards_keep_their_row_and_changed_ones_are_updated(organization, world):
    account, usage, line = world
    reconcile_organization(organization)
    first = discrepancy(line)
    reconcile_organization(organization)
    assert discrepancy(line).pk == first.pk and discrepancy(line).computed_at == first.computed_at
    usage.active_users = 50
    usage.save()
    reconcile_organization(organization)
    again = discrepancy(line)
    assert (again.pk, again.kind, again.delta) == (first.pk, Kind.NO_CHANGE, Decimal(0))
    AccountMapping.objects.filter(vendor_account=account).delete()
    reconcile_organization(organization)
    assert not SeatDiscrepancy.objects.exists()


def test_a_successful_sync_reconciles_the_organization(
    owner_client, organization, sandbox, django_capture_on_commit_callbacks
):
    """The real path: import KnowBe4 and ConnectWise from the sandboxes, map one customer and
    one service, sync, and the card is there."""
    from integrations.models import VendorAccount
    from psa.models import BillingLine
    from reconcile.core.signals import request_sync
    from reconcile.sync.models import SyncRun
    from tests.psa.conftest import demo_settings_and_secrets

    kb4 = lifecycle.connect(
        VendorConnection,
        organization,
        None,
        kind="knowbe4_partner",
        settings={"region": "us", "base_url": sandbox.graphql_url()},
        secrets={"api_key": sandbox.demo_key},
    )
    settings, secrets = demo_settings_and_secrets("connectwise", sandbox.base_url)
    cw = lifecycle.connect(
        PSAConnection, organization, None, kind="connectwise", settings=settings, secrets=secrets
    )
    with django_capture_on_commit_callbacks(execute=True):
        request_sync(cw, trigger="connect")
    line = (
        BillingLine.objects.filter(product__identifier="KB4-DIA-U")
        .select_related("company", "product")
        .first()
    )
    with django_capture_on_commit_callbacks(execute=True):
        request_sync(kb4, trigger="connect")
    account = VendorAccount.objects.filter(subscription_level="Diamond").first()
    AccountMapping.objects.create(
        organization=organization,
        vendor_account=account,
        psa_company=line.company,
        state="mapped",
        source="manual",
    )
    ServiceMapping.objects.create(
        organization=organization,
        vendor_service=kb4.services.get(code="sat-diamond"),
        psa_product=line.product,
        state="mapped",
        source="manual",
    )
    kb4.min_manual_interval = 0
    kb4.save()
    with django_capture_on_commit_callbacks(execute=True):
        request_sync(kb4, trigger="manual")
    card = SeatDiscrepancy.objects.get(line=line)
    assert card.vendor_count == account.active_users
    assert "Reconciled:" in SyncRun.objects.filter(vendor_connection=kb4).first().log[-1]["message"]


def test_a_vanished_card_leaves_a_closing_history_point(organization, world):
    _, _, line = world
    reconcile_organization(organization)
    BillingLine.objects.filter(pk=line.pk).update(cancelled_date=timezone.localdate())
    reconcile_organization(organization)  # the usage is now new revenue: no line bills it
    assert not SeatDiscrepancy.objects.filter(line=line).exists()
    last = CountHistory.objects.filter(line=line).order_by("id").last()
    assert (last.vendor_count, last.billed) == (None, None)


def test_users_left_out_by_exclusion_patterns_show_on_the_card(organization, world):
    _, usage, line = world
    UsageSnapshot.objects.filter(pk=usage.pk).update(active_users=45, excluded_users=3)
    reconcile_organization(organization)
    card = discrepancy(line)
    assert (card.vendor_count, card.vendor_excluded, card.target) == (45, 3, Decimal(45))


def test_each_new_or_changed_card_gets_one_history_point(organization, world):
    account, usage, line = world

    def points():
        return [
            (p.line_id, p.psa_company_id, p.vendor_count, p.billed)
            for p in CountHistory.objects.filter(organization=organization).order_by("id")
        ]

    reconcile_organization(organization)
    assert points() == [(line.pk, line.company_id, 48, Decimal(50))]
    reconcile_organization(organization)  # nothing moved: no point
    assert len(points()) == 1
    # A second customer appears (new revenue, no line) while the first one's count moves.
    other = VendorAccountFactory(connection=account.connection, active_users=7)
    UsageSnapshotFactory(account=other, service=usage.service, active_users=7)
    company = PSACompanyFactory(connection=line.connection)
    AccountMapping.objects.create(
        organization=organization,
        vendor_account=other,
        psa_company=company,
        state="mapped",
        source="manual",
    )
    UsageSnapshot.objects.filter(pk=usage.pk).update(active_users=49)
    reconcile_organization(organization)
    assert points()[0] == (line.pk, line.company_id, 48, Decimal(50))
    assert set(points()[1:]) == {
        (line.pk, line.company_id, 49, Decimal(50)),
        (None, company.pk, 7, Decimal(0)),
    }
