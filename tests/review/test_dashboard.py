import datetime
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from reconcile.demo import DEMO_EMAIL, DEMO_ORGANIZATION
from reconcile.mapping.models import AccountMapping
from reconcile.review import dashboard
from reconcile.review.models import CountHistory, Decision, SeatDiscrepancy
from tests.conftest import login
from tests.factories import (
    BillingLineFactory,
    CountHistoryFactory,
    MembershipFactory,
    OrganizationFactory,
    PSAConnectionFactory,
    SeatDiscrepancyFactory,
    SyncRunFactory,
    VendorAccountFactory,
    VendorConnectionFactory,
)

pytestmark = pytest.mark.django_db
Kind = SeatDiscrepancy.Kind
D = Decimal


def card(organization, kind=Kind.RECONCILE, **numbers):
    return SeatDiscrepancyFactory(
        line__container__connection__organization=organization, kind=kind, **numbers
    )


@pytest.fixture
def cards(organization):
    """Under-billed by 5 + 3 (one without a price) + 10 new revenue; over-billed by 2 and 4."""
    line = card(organization, vendor_count=55, billed=50, unit_price=3).line
    company, product = line.company, line.product
    card(organization, vendor_count=13, billed=10, unit_price=None, monthly_change=None)
    SeatDiscrepancy.objects.create(
        organization=organization,
        kind=Kind.NEW_REVENUE,
        psa_company=company,
        psa_product=product,
        vendor_count=10,
        billed=0,
        target=10,
        delta=10,
        unit_price=D("2.5"),
        monthly_change=D("25.00"),
    )
    card(organization, vendor_count=48, billed=50, unit_price=3)
    card(organization, vendor_count=16, billed=20, unit_price=D("1.25"))
    card(organization, Kind.NO_CHANGE, vendor_count=30, billed=30)
    card(
        organization,
        Kind.NO_VENDOR_DATA,
        vendor_count=None,
        billed=30,
        target=None,
        delta=None,
        monthly_change=None,
    )
    # left out: a dismissed card, and another organization's
    card(organization, vendor_count=500, billed=50, decision=Decision.DISMISSED)
    card(OrganizationFactory(), vendor_count=900, billed=50)


def test_totals_sum_under_and_over_billed_seats_and_money(organization, cards):
    totals = dashboard.totals(organization)
    assert totals["under"] == {"cards": 3, "seats": D(18), "money": D("40.00"), "unpriced": 1}
    assert totals["over"] == {"cards": 2, "seats": D(6), "money": D("11.00"), "unpriced": 0}
    assert totals["new_revenue"] == {"cards": 1, "seats": D(10), "money": D("25.00"), "unpriced": 0}


def test_totals_of_an_organization_without_cards_are_zero(organization):
    zero = {"cards": 0, "seats": D(0), "money": D(0), "unpriced": 0}
    assert dashboard.totals(organization) == {"under": zero, "over": zero, "new_revenue": zero}


def test_month_ends_are_the_previous_months_last_days_then_today():
    assert dashboard.month_ends(datetime.date(2026, 3, 31), 4) == [
        datetime.date(2025, 12, 31),
        datetime.date(2026, 1, 31),
        datetime.date(2026, 2, 28),
        datetime.date(2026, 3, 31),
    ]
    assert dashboard.month_ends(datetime.date(2026, 1, 1), 2) == [
        datetime.date(2025, 12, 31),
        datetime.date(2026, 1, 1),
    ]


def test_monthly_series_carries_each_cards_latest_point_forward(organization):
    a = BillingLineFactory(container__connection__organization=organization)
    b = BillingLineFactory(container=a.container, product=a.product)
    day = datetime.date

    def point(line, on, used, billed, **other):
        CountHistoryFactory(line=line, day=on, vendor_count=used, billed=billed, **other)

    point(a, day(2026, 1, 10), 10, 8)  # before the window: the baseline
    point(a, day(2026, 3, 5), 12, 8)
    point(b, day(2026, 3, 31), 5, 5)  # on the month end: counts for March
    point(a, day(2026, 3, 31), 13, 9)  # two points of a on one day: the later one wins
    # new revenue: no line, keyed by company and product; no billed quantity counts 0
    CountHistory.objects.create(
        organization=organization,
        psa_company=a.company,
        psa_product=a.product,
        day=day(2026, 4, 2),
        vendor_count=3,
        billed=None,
    )
    point(a, day(2026, 5, 10), 15, 12)
    point(a, day(2026, 5, 20), 99, 99)  # after today: not yet
    other = BillingLineFactory()  # another organization's
    point(other, day(2026, 2, 1), 1000, 1000)

    series = dashboard.monthly_series(organization, months=4, today=day(2026, 5, 15))
    assert series == [
        {"month": day(2026, 2, 28), "used": 10, "billed": D(8)},
        {"month": day(2026, 3, 31), "used": 18, "billed": D(14)},
        {"month": day(2026, 4, 30), "used": 21, "billed": D(14)},  # March carried to April
        {"month": day(2026, 5, 15), "used": 23, "billed": D(17)},
    ]


def test_monthly_series_is_cached_until_a_point_is_added_or_removed(
    organization, django_assert_num_queries
):
    line = BillingLineFactory(container__connection__organization=organization)
    today = datetime.date(2026, 5, 15)
    first = CountHistoryFactory(line=line, day=datetime.date(2026, 4, 1), vendor_count=10)
    assert dashboard.monthly_series(organization, today=today)[-1]["used"] == 10
    with django_assert_num_queries(1):  # the history's count and newest id: the fold is cached
        assert dashboard.monthly_series(organization, today=today)[-1]["used"] == 10
    CountHistoryFactory(line=line, day=datetime.date(2026, 5, 1), vendor_count=12)
    assert dashboard.monthly_series(organization, today=today)[-1]["used"] == 12
    first.delete()
    assert dashboard.monthly_series(organization, today=today)[-2]["used"] == 0
    CountHistory.objects.filter(line=line).delete()
    assert dashboard.monthly_series(organization, today=today)[-1]["used"] == 0


def test_after_a_new_point_only_this_months_points_are_folded_again(
    organization, django_assert_num_queries
):
    line = BillingLineFactory(container__connection__organization=organization)
    today = datetime.date(2026, 5, 15)
    for month, used in ((1, 10), (2, 11), (3, 12), (4, 13)):
        CountHistoryFactory(line=line, day=datetime.date(2026, month, 2), vendor_count=used)
    other = BillingLineFactory(container=line.container)
    CountHistoryFactory(line=other, day=datetime.date(2026, 5, 1), vendor_count=5)
    assert [p["used"] for p in dashboard.monthly_series(organization, 4, today)] == [11, 12, 13, 18]
    CountHistoryFactory(line=other, day=today, vendor_count=7)  # a sync today
    # The series' key, the key of the fold up to April 30 (unchanged, kept) and May's points.
    with django_assert_num_queries(3) as captured:
        series = dashboard.monthly_series(organization, 4, today)
    assert '"day" > ' in captured.captured_queries[-1]["sql"]  # May's points only
    assert [p["used"] for p in series] == [11, 12, 13, 20]
    CountHistoryFactory(line=line, day=datetime.date(2026, 3, 20), vendor_count=30)  # backfilled
    series = dashboard.monthly_series(organization, 4, today)
    assert [p["used"] for p in series] == [11, 30, 13, 20]  # April's point is later
    cache.clear()
    assert dashboard.monthly_series(organization, 4, today) == series  # the same, folded anew


def test_monthly_series_without_history_is_zeros_and_the_chart_starts_with_data(organization):
    today = datetime.date(2026, 5, 15)
    series = dashboard.monthly_series(organization, months=12, today=today)
    assert len(series) == 12 and {(p["used"], p["billed"]) for p in series} == {(0, D(0))}
    assert dashboard.months_with_data(series) == 0

    CountHistoryFactory(
        line__container__connection__organization=organization,
        day=datetime.date(2026, 3, 3),
        vendor_count=7,
        billed=D("6.5"),
    )
    series = dashboard.monthly_series(organization, months=12, today=today)
    assert dashboard.months_with_data(series) == 3
    assert dashboard.chart(series, today=today) == {
        "labels": ["Mar 2026", "Apr 2026", "Today"],
        "series": [
            {
                "label": "Active users (KnowBe4)",
                "data": [7, 7, 7],
                "color": "#ff6a13",
                "dashed": False,
            },
            {
                "label": "Billed seats (PSA)",
                "data": [6.5, 6.5, 6.5],
                "color": "#4338ca",
                "dashed": True,
            },
        ],
    }


def test_the_dashboard_shows_the_figures_with_links(owner_client, organization, cards):
    organization.currency = "EUR"
    organization.save()
    VendorAccountFactory(connection__organization=organization)  # unmapped
    excluded = VendorAccountFactory(connection__organization=organization)
    AccountMapping.objects.create(
        organization=organization, vendor_account=excluded, state="excluded", source="manual"
    )
    html = owner_client.get(reverse("home")).content.decode()
    review = reverse("review:index")
    assert '<span class="stat-unit">EUR</span> 40.00' in html
    assert f'<a href="{review}?direction=under">18 seats</a> used but not billed, 3 cards' in html
    assert f'<a href="{review}?kind=new_revenue">1 new revenue</a>: 10 seats, EUR 25.00' in html
    assert "1 without a unit price" in html
    assert '<span class="stat-unit">EUR</span> 11.00' in html
    assert f'<a href="{review}?direction=over">6 seats</a> billed but not used, 2 cards' in html
    assert f'href="{reverse("mapping:accounts")}?filter=unmapped">1</a>' in html


def test_the_chart_waits_for_two_months_of_history(owner_client, organization):
    line = BillingLineFactory(container__connection__organization=organization)
    CountHistoryFactory(line=line, vendor_count=40, billed=38)
    html = owner_client.get(reverse("home")).content.decode()
    assert "History builds up with every sync;</strong> 1 month so far." in html
    assert "data-chart" not in html

    first_of_month = timezone.localdate().replace(day=1)
    end_of_month_before_last = (first_of_month - datetime.timedelta(days=1)).replace(
        day=1
    ) - datetime.timedelta(days=1)
    CountHistoryFactory(line=line, day=end_of_month_before_last, vendor_count=30)
    response = owner_client.get(reverse("home"))
    html = response.content.decode()
    assert '<canvas data-chart="seats-chart"' in html
    assert '<script id="seats-chart" type="application/json">' in html
    chart = response.context["chart"]
    assert chart["labels"][-1] == "Today" and len(chart["labels"]) == 3
    assert chart["series"][0]["data"] == [30, 30, 40]


def test_an_outsider_sees_only_their_own_organization(client, organization, cards, outsider):
    VendorConnectionFactory(organization=organization, description="Acme's KnowBe4")
    html = login(client, outsider).get(reverse("home")).content.decode()
    assert "<h1>Other MSP</h1>" in html
    assert '<span class="stat-unit">USD</span> 0.00' in html
    assert "40.00" not in html and "Acme" not in html
    assert "Nothing is connected yet" in html


def test_sync_health_shows_failed_and_stale_connections_in_red(owner_client, organization):
    now = timezone.now()
    failed = VendorConnectionFactory(
        organization=organization,
        description="Partner US",
        state="error",
        last_error="The API key was revoked (401).",
        last_error_at=now - datetime.timedelta(hours=2),
        last_success_at=now - datetime.timedelta(days=1),
    )
    stale = PSAConnectionFactory(
        organization=organization,
        description="ConnectWise",
        last_success_at=now - datetime.timedelta(days=3),
        polling_interval=1440,
    )
    fresh = PSAConnectionFactory(
        organization=organization,
        description="Autotask",
        kind="autotask",
        last_success_at=now - datetime.timedelta(hours=30),  # daily: stale only after 48 h
    )
    first = VendorConnectionFactory(organization=organization, state="pending")
    SyncRunFactory(vendor_connection=first)  # a first import under way is not a problem
    never = VendorConnectionFactory(organization=organization, state="pending")

    health = {(row.kind, row.connection.pk): row for row in dashboard.sync_health(organization)}
    assert health["vendor", failed.pk].problem == "error"
    assert health["psa", stale.pk].problem == "stale"
    assert health["psa", fresh.pk].problem == ""
    assert (health["vendor", first.pk].problem, health["vendor", first.pk].is_bad) == (
        "never",
        False,
    )
    assert health["vendor", never.pk].is_bad

    html = owner_client.get(reverse("home")).content.decode()
    assert f'<tr class="health-bad" data-testid="health-vendor-{failed.pk}">' in html
    assert "Import failed 2\xa0hours ago: The API key was revoked (401)." in html
    assert f'<tr class="health-bad" data-testid="health-psa-{stale.pk}">' in html
    assert "Stale: no successful import for 3\xa0days, scheduled daily." in html
    assert f'<tr class="" data-testid="health-psa-{fresh.pk}">' in html
    assert f'<tr class="" data-testid="health-vendor-{first.pk}">' in html
    assert "Never imported." in html
    assert f'href="{reverse("sync:status")}"' in html


def _world(organization, n):
    """n cards with two change points each, a vendor and a PSA connection."""
    line = BillingLineFactory(container__connection__organization=organization)
    VendorConnectionFactory(organization=organization)
    today = timezone.localdate()
    SeatDiscrepancy.objects.bulk_create(
        SeatDiscrepancy(
            organization=organization,
            kind=Kind.NEW_REVENUE,
            psa_company=line.company,
            psa_product=line.product,
            vendor_count=i,
            billed=0,
            target=i,
            delta=i,
            unit_price=1,
            monthly_change=i,
        )
        for i in range(1, n + 1)
    )
    CountHistory.objects.bulk_create(
        CountHistory(
            organization=organization,
            line=line if i % 2 else None,
            psa_company=line.company,
            psa_product=line.product,
            day=today - datetime.timedelta(days=40 * (i % 3)),
            vendor_count=i,
            billed=i,
        )
        for i in range(2 * n)
    )


def test_the_dashboard_reads_a_constant_number_of_queries(
    owner_client, organization, django_assert_max_num_queries
):
    _world(organization, 3)
    owner_client.get(reverse("home"))  # the first request of a session writes it
    cache.clear()  # the chart's series computed, not read from the cache, each time
    with CaptureQueriesContext(connection) as few:
        assert owner_client.get(reverse("home")).status_code == 200
    SeatDiscrepancy.objects.all().delete()
    CountHistory.objects.all().delete()
    _world(organization, 300)
    cache.clear()
    with CaptureQueriesContext(connection) as many:
        assert owner_client.get(reverse("home")).status_code == 200
    assert len(many) == len(few), [q["sql"][:80] for q in many]
    # The dashboard's own figures, plus the session, the membership, the quarantine banner
    # and the notification bell every page reads.
    cache.clear()
    with django_assert_max_num_queries(15):
        owner_client.get(reverse("home"))


def test_demo_history_is_invented_for_the_demo_organization_only(organization):
    with pytest.raises(CommandError, match="No demo organization"):
        call_command("backfill_demo_history")
    demo = MembershipFactory(
        organization__name=DEMO_ORGANIZATION, user__email=DEMO_EMAIL
    ).organization
    grows = card(demo, vendor_count=120, billed=100)
    shrinks = card(demo, vendor_count=40, billed=50)
    card(organization, vendor_count=120, billed=100)  # not the demo's: never touched
    today = timezone.localdate()
    for discrepancy in (grows, shrinks):  # what the first reconciliation wrote
        CountHistoryFactory(
            line=discrepancy.line, vendor_count=discrepancy.vendor_count, billed=discrepancy.billed
        )

    call_command("backfill_demo_history")
    assert not CountHistory.objects.filter(organization=organization).exists()
    history = CountHistory.objects.filter(organization=demo)
    count = history.count()
    assert count > 4 and history.filter(day__lt=today).count() == count - 2
    growth = history.filter(line=grows.line).exclude(day=today)
    assert growth.first().vendor_count < 120 and growth.first().billed <= 100
    archived = history.filter(line=shrinks.line).exclude(day=today)
    assert archived.first().vendor_count > 40 and {p.billed for p in archived} == {50}
    series = dashboard.monthly_series(demo, today=today)
    assert dashboard.months_with_data(series) == 12
    assert (series[-1]["used"], series[-1]["billed"]) == (160, 150)

    call_command("backfill_demo_history")  # idempotent
    assert history.count() == count
