"""The review page: filters, decisions with their validation, bulk actions, access, CSV."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from psa.models import BillingContainer, BillingLine, PSACompany, PSAConnection, PSAProduct
from reconcile.review import services
from reconcile.review.models import BillingRule, CompanyTag, PushBatch, PushItem, SeatDiscrepancy
from reconcile.tenancy.models import AuditEvent, Role
from tests.conftest import login
from tests.factories import PSAConnectionFactory, SeatDiscrepancyFactory

pytestmark = pytest.mark.django_db
NEXT = services.first_of_next_month()


@pytest.fixture
def psa(organization):
    return PSAConnectionFactory(organization=organization)


def make_card(psa, **fields):
    return SeatDiscrepancyFactory(line__container__connection=psa, **fields)


@pytest.fixture
def finance(member_factory):
    return member_factory(Role.FINANCE)


def page_text(client, **params):
    response = client.get(reverse("review:index"), params)
    assert response.status_code == 200
    return response.content.decode()


def test_the_page_shows_cards_with_their_money_and_filters_them(client, owner, psa):
    under = make_card(psa, vendor_count=60, billed=50, line__container__company__name="Under Co")
    over = make_card(psa, vendor_count=40, billed=50, line__container__company__name="Over Co")
    make_card(
        psa,
        kind="no_change",
        vendor_count=50,
        billed=50,
        line__container__company__name="Steady Co",
    )
    login(client, owner)
    text = page_text(client)
    assert "Under Co" in text and "Over Co" in text and "Steady Co" not in text
    assert "+$30.00" in text and "\u2212$30.00" in text  # 10 seats × 3.00 either way
    assert "Steady Co" in page_text(client, kind="no_change")
    text = page_text(client, direction="under")
    assert "Under Co" in text and "Over Co" not in text
    text = page_text(client, q="over")
    assert "Over Co" in text and "Under Co" not in text
    CompanyTag.objects.create(
        organization=under.organization, psa_company=under.psa_company, name="arrears"
    )
    text = page_text(client, tag="arrears")
    assert "Under Co" in text and "Over Co" not in text
    text = page_text(client, sort="name", view="table", group="company")
    assert text.index("Over Co") < text.index("Under Co")
    assert over.pk and 'class="group-row"' in text


def test_approve_adjust_dismiss_and_undo(client, finance, psa):
    card = make_card(psa, vendor_count=60, billed=50)
    login(client, finance)
    response = client.post(reverse("review:approve", args=[card.pk]))
    assert response.status_code == 200 and "Approved: bill 60" in response.content.decode()
    card.refresh_from_db()
    assert (card.decision, card.decided_quantity, card.effective_date) == ("approved", 60, NEXT)
    client.post(reverse("review:undo", args=[card.pk]))
    response = client.post(
        reverse("review:adjust", args=[card.pk]),
        {"quantity": "55", "effective_date": NEXT.isoformat()},
    )
    card.refresh_from_db()
    assert (card.decision, card.decided_quantity) == ("adjusted", Decimal(55))
    client.post(reverse("review:undo", args=[card.pk]))
    response = client.post(reverse("review:dismiss", args=[card.pk]), {"reason": "trial users"})
    assert "Dismissed: trial users" in response.content.decode()
    card.refresh_from_db()
    assert card.decision == "dismissed" and card.dismiss_reason == "trial users"
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == [
        "review.approve",
        "review.undo",
        "review.adjust",
        "review.undo",
        "review.dismiss",
    ]


@pytest.mark.parametrize(
    "quantity, effective_date, message",
    [
        ("-3", NEXT, "cannot be negative"),
        ("twelve", NEXT, "as a number"),
        ("1000001", NEXT, "surely a typo"),
        ("40", timezone.localdate() - datetime.timedelta(days=1), "cannot be in the past"),
    ],
)
def test_bad_adjustments_are_refused_with_a_message(
    client, finance, psa, quantity, effective_date, message
):
    card = make_card(psa, vendor_count=60, billed=50)
    login(client, finance)
    response = client.post(
        reverse("review:adjust", args=[card.pk]),
        {"quantity": quantity, "effective_date": effective_date.isoformat()},
    )
    assert response.status_code == 422
    assert message in response.content.decode()
    card.refresh_from_db()
    assert card.decision == "" and not PushItem.objects.exists()


def test_a_dismiss_needs_a_reason(client, finance, psa):
    card = make_card(psa)
    login(client, finance)
    response = client.post(reverse("review:dismiss", args=[card.pk]), {"reason": ""})
    assert response.status_code == 422 and "Say why" in response.content.decode()


def test_a_dismissed_card_comes_back_when_its_numbers_change(organization, owner, psa):
    card = make_card(psa, vendor_count=60, billed=50)
    services.dismiss(organization, owner, [card.pk], "seasonal staff")
    row = (organization.pk, "reconcile", card.line_id, card.psa_company_id, card.psa_product_id)
    same = (
        60,
        Decimal(50),
        Decimal(60),
        Decimal(10),
        Decimal(3),
        Decimal(30),
        None,
        timezone.now(),
    )
    services._write(organization, [row + same])
    card.refresh_from_db()
    assert card.decision == "dismissed"  # same numbers: it stays dismissed
    changed = (
        64,
        Decimal(50),
        Decimal(64),
        Decimal(14),
        Decimal(3),
        Decimal(42),
        None,
        timezone.now(),
    )
    services._write(organization, [row + changed])
    card.refresh_from_db()
    assert (card.decision, card.dismiss_reason, card.vendor_count) == ("", "", 64)


def test_bulk_approve_with_an_effective_date_then_dismiss(client, finance, psa):
    cards = [make_card(psa, vendor_count=60 + i, billed=50) for i in range(3)]
    login(client, finance)
    date = NEXT + datetime.timedelta(days=14)
    response = client.post(
        reverse("review:bulk"),
        {"action": "approve", "ids": [c.pk for c in cards[:2]], "effective_date": date},
        follow=True,
    )
    assert "2 approved" in response.content.decode()
    assert list(
        SeatDiscrepancy.objects.filter(decision="approved").values_list("effective_date", flat=True)
    ) == [date, date]
    response = client.post(
        reverse("review:bulk"), {"action": "dismiss", "ids": [cards[2].pk]}, follow=True
    )
    assert "Say why these are dismissed" in response.content.decode()
    client.post(
        reverse("review:bulk"), {"action": "dismiss", "ids": [cards[2].pk], "reason": "VIP"}
    )
    assert SeatDiscrepancy.objects.get(pk=cards[2].pk).decision == "dismissed"
    client.post(reverse("review:bulk"), {"action": "tag", "ids": [cards[0].pk], "tag": "arrears"})
    assert list(CompanyTag.objects.values_list("name", flat=True)) == ["arrears"]


def test_viewers_read_but_cannot_act(client, member_factory, psa):
    card = make_card(psa)
    login(client, member_factory(Role.VIEWER))
    assert 'data-testid="approve"' not in page_text(client)
    assert client.post(reverse("review:approve", args=[card.pk])).status_code == 403
    assert client.post(reverse("review:test_mode")).status_code == 403


def test_another_organizations_finance_user_gets_404(client, outsider, psa):
    card = make_card(psa)
    login(client, outsider)
    for name in ("approve", "dismiss", "undo", "adjust"):
        response = client.post(reverse(f"review:{name}", args=[card.pk]), {"reason": "x"})
        assert response.status_code == 404, name
    assert client.get(reverse("review:details", args=[card.pk])).status_code == 404
    client.post(reverse("review:bulk"), {"action": "approve", "ids": [card.pk]})
    card.refresh_from_db()
    assert card.decision == ""
    assert "Company" not in page_text(client)


def test_csv_export_follows_the_filters(client, owner, psa):
    make_card(psa, vendor_count=60, billed=50, line__container__company__name="Under Co")
    make_card(psa, vendor_count=40, billed=50, line__container__company__name="Over Co")
    login(client, owner)
    response = client.get(reverse("review:export"), {"direction": "over"})
    assert response["Content-Type"].startswith("text/csv")
    rows = b"".join(response.streaming_content).decode().strip().splitlines()
    assert len(rows) == 2 and "Over Co" in rows[1] and "-30.00" in rows[1]
    assert rows[0].startswith("Type,Customer,Product")


def test_details_show_the_count_history(client, owner, psa):
    card = make_card(psa, vendor_count=60, billed=50)
    for days, used in ((60, 52), (30, 57), (0, 60)):
        card.organization  # noqa: B018
        from reconcile.review.models import CountHistory

        CountHistory.objects.create(
            organization=card.organization,
            line=card.line,
            psa_company=card.psa_company,
            psa_product=card.psa_product,
            day=timezone.localdate() - datetime.timedelta(days=days),
            vendor_count=used,
            billed=50,
        )
    login(client, owner)
    text = client.get(reverse("review:details", args=[card.pk])).content.decode()
    assert 'data-chart="chart-' in text and "[52, 57, 60]" in text


def test_the_review_page_costs_the_same_queries_for_10_000_lines(client, owner, psa):
    login(client, owner)

    def build(count):
        company = PSACompany.objects.create(
            organization=psa.organization, connection=psa, external_id=f"c{count}", name=f"C{count}"
        )
        product = PSAProduct.objects.create(
            organization=psa.organization, connection=psa, external_id=f"p{count}", name="SAT"
        )
        container = BillingContainer.objects.create(
            organization=psa.organization, connection=psa, company=company, external_id=f"a{count}"
        )
        lines = BillingLine.objects.bulk_create(
            BillingLine(
                organization=psa.organization,
                connection=psa,
                container=container,
                company=company,
                product=product,
                external_id=f"{count}-{i}",
                quantity=50,
            )
            for i in range(count)
        )
        SeatDiscrepancy.objects.bulk_create(
            SeatDiscrepancy(
                organization=psa.organization,
                kind="reconcile",
                line=line,
                psa_company=company,
                psa_product=product,
                vendor_count=50 + i % 7 + 1,
                billed=50,
                target=50 + i % 7 + 1,
                delta=i % 7 + 1,
                unit_price=3,
                monthly_change=3 * (i % 7 + 1),
            )
            for i, line in enumerate(lines)
        )

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("review:index")).status_code == 200
        return len(captured)

    build(20)
    queries()  # the first request of a session also saves the session
    few = queries()  # every card rendered before, from the cache
    build(10_000)
    assert queries() == few + 2  # 50 new cards on the page: loaded, their tags prefetched
    assert queries() == few


def test_the_approved_bar_counts_the_adjusted_quantity(client, finance, psa):
    card = make_card(psa, vendor_count=60, billed=50)  # 3.00 a seat
    login(client, finance)
    client.post(
        reverse("review:adjust", args=[card.pk]),
        {"quantity": "52", "effective_date": NEXT.isoformat()},
    )
    bar = client.get(reverse("review:index"), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="approved-bar")
    assert "+$6.00" in bar.content.decode()  # 2 seats, not the card's 10


def test_a_cached_card_shows_every_change_of_the_rows_behind_it(client, owner, psa):
    """Cards are rendered once and kept by a digest of their rows: any change shows at once."""
    card = make_card(psa, vendor_count=60, billed=50, line__container__company__name="Old Co")
    login(client, owner)
    assert "Old Co" in page_text(client)
    PSACompany.objects.filter(pk=card.psa_company_id).update(name="New Co")
    assert "New Co" in page_text(client) and "Old Co" not in page_text(client)
    CompanyTag.objects.create(
        organization=card.organization, psa_company=card.psa_company, name="arrears"
    )
    assert '<span class="tag">arrears</span>' in page_text(client)
    BillingContainer.objects.filter(pk=card.line.container_id).update(name="Agreement 2027")
    assert "Agreement 2027" in page_text(client)
    BillingRule.objects.create(organization=card.organization, line=card.line, exclude_users=4)
    assert "rule: −4 users" in page_text(client)
    SeatDiscrepancy.objects.filter(pk=card.pk).update(vendor_count=70, delta=20, target=70)
    assert "Approve 70" in page_text(client)
    text = page_text(client, view="table")
    assert "New Co" in text and "+20" in text
    PSAConnection.objects.filter(pk=psa.pk).update(description="Our ConnectWise")
    assert "Our ConnectWise" in page_text(client)
    batch = PushBatch.objects.create(organization=card.organization)
    item = PushItem.objects.create(
        organization=card.organization,
        batch=batch,
        discrepancy=card,
        line=card.line,
        company_name="New Co",
        product_name="SAT",
        new_quantity=70,
        state=PushItem.State.PUSHING,
    )
    SeatDiscrepancy.objects.filter(pk=card.pk).update(push_item=item)
    assert 'data-testid="push-state"><span class="spinner inline"></span> Pushing' in page_text(
        client, state="all"
    )
    PushItem.objects.filter(pk=item.pk).update(state=PushItem.State.CONFIRMED)
    assert "Confirmed: now 70" in page_text(client, state="all")


def test_cards_grouped_by_customer_or_product_under_headings(client, owner, psa):
    make_card(psa, vendor_count=60, billed=50, line__container__company__name="Alpha Co")
    make_card(psa, vendor_count=55, billed=50, line__container__company__name="Beta Co")
    login(client, owner)
    text = page_text(client, group="company")
    assert '<h2 class="group-head">Alpha Co</h2>' in text
    assert '<h2 class="group-head">Beta Co</h2>' in text
    product = PSAProduct.objects.filter(organization=psa.organization).first()
    PSAProduct.objects.filter(pk=product.pk).update(name="Diamond", identifier="KB4-DIA")
    text = page_text(client, group="product", view="table")
    assert '<tr class="group-row"><th colspan="10">Diamond (KB4-DIA)</th></tr>' in text


def test_a_cached_cards_customer_link_keeps_the_filters_of_the_page_it_is_on(client, owner, psa):
    card = make_card(psa, vendor_count=60, billed=50)
    login(client, owner)
    company = card.psa_company_id
    assert f"?sort=delta&amp;company={company}" in page_text(client, sort="delta")
    text = page_text(client, sort="name")
    assert f"?sort=name&amp;company={company}" in text and "sort=delta" not in text
