"""DEMO ONLY: twelve months of invented count history for the demo organization.

Reconciliation writes a CountHistory change point only when a card's numbers change, so a
fresh `make run` has one point per card (today's) and the dashboard's chart waits for a second
month. This command invents the year before that point for the demo organization only, so the
chart shows seat drift: users grow through SCIM provisioning (or shrink as they are archived)
while the billed quantity lags and steps up at a few true-ups.

It refuses every organization but the demo's (reconcile.demo: DEMO_ORGANIZATION owned by
DEMO_EMAIL). Product code never writes invented history; run this by hand after the demo's
first reconciliation (KnowBe4 connected, customers mapped, setup finished).
"""

import datetime
import random
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from reconcile.demo import DEMO_EMAIL, DEMO_ORGANIZATION
from reconcile.review.models import CountHistory, SeatDiscrepancy
from reconcile.tenancy.models import Membership, Organization

Kind = SeatDiscrepancy.Kind
MONTHS = 12


def demo_organization() -> Organization | None:
    membership = (
        Membership.objects.filter(user__username=DEMO_EMAIL, organization__name=DEMO_ORGANIZATION)
        .select_related("organization")
        .first()
    )
    return membership.organization if membership else None


def _key(line_id, company_id, product_id):
    return ("line", line_id) if line_id is not None else ("new", company_id, product_id)


def _month_start(day: datetime.date, back: int) -> datetime.date:
    month = day.year * 12 + day.month - 1 - back
    return datetime.date(month // 12, month % 12 + 1, 1)


def invented_points(card, before: datetime.date) -> list[tuple[datetime.date, int, Decimal]]:
    """DEMO DATA: (day, used, billed) change points of the year before `before`, ending near
    the card's real numbers (the real point at `before` takes over from there)."""
    rng = random.Random(repr(_key(card.line_id, card.psa_company_id, card.psa_product_id)))
    used_now, billed_now = card.vendor_count, card.billed or Decimal(0)
    if card.kind == Kind.NEW_REVENUE:
        first_month = rng.randint(2, 8)  # the customer started using it a few months ago
        used_then, billed_then, steps = max(1, round(used_now * rng.uniform(0.4, 0.8))), 0, []
    elif billed_now > used_now:  # over-billed: users archived, the quantity never went down
        first_month = MONTHS
        used_then, billed_then, steps = (
            round(billed_now * Decimal(rng.uniform(0.97, 1.03))),
            None,
            [],
        )
    else:  # users grew; the quantity lags, raised at a few true-ups
        first_month = MONTHS
        used_then = round(used_now / rng.uniform(1.05, 1.35))
        billed_then = min(billed_now, Decimal(used_then // 5 * 5))
        steps = sorted(rng.sample(range(2, MONTHS), rng.randint(1, 3)))
    points, last = [], None
    for back in range(first_month, 0, -1):
        day = _month_start(before, back) + datetime.timedelta(days=rng.randint(0, 27))
        if day >= before:
            break
        progress = (first_month - back) / first_month
        used = max(
            0, round(used_then + (used_now - used_then) * progress + rng.gauss(0, 0.02) * used_now)
        )
        if billed_then is None:
            billed = billed_now
        elif steps and MONTHS - back >= steps[0]:
            done = sum(1 for step in steps if MONTHS - back >= step)
            billed = billed_then + (billed_now - billed_then) * done // len(steps)
        else:
            billed = billed_then
        if (used, billed) != last:
            points.append((day, used, Decimal(billed)))
            last = (used, billed)
    return points


class Command(BaseCommand):
    help = (
        "DEMO ONLY: invent 12 months of count history for the demo organization's cards "
        "(after its first reconciliation), so the dashboard chart shows drift. Idempotent."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        organization = demo_organization()
        if organization is None:
            raise CommandError(
                f"No demo organization ({DEMO_ORGANIZATION!r} of {DEMO_EMAIL}): run load_demo "
                "first. This command never writes history for any other organization."
            )
        today = timezone.localdate()
        first_point = {
            _key(row["line_id"], row["psa_company_id"], row["psa_product_id"]): row["first"]
            for row in CountHistory.objects.filter(organization=organization)
            .values("line_id", "psa_company_id", "psa_product_id")
            .annotate(first=Min("day"))
        }
        cards = SeatDiscrepancy.objects.filter(
            organization=organization,
            kind__in=[Kind.RECONCILE, Kind.NEW_REVENUE, Kind.NO_CHANGE],
            vendor_count__isnull=False,
        ).order_by("id")
        rows, filled = [], 0
        for card in cards:
            before = first_point.get(_key(card.line_id, card.psa_company_id, card.psa_product_id))
            if before is not None and before < today - datetime.timedelta(days=31):
                continue  # it has history already (a previous backfill, or real syncs)
            points = invented_points(card, before or today)
            filled += bool(points)
            rows += [
                CountHistory(
                    organization=organization,
                    line_id=card.line_id,
                    psa_company_id=card.psa_company_id,
                    psa_product_id=card.psa_product_id,
                    day=day,
                    vendor_count=used,
                    billed=billed,
                )
                for day, used, billed in points
            ]
        if not cards:
            self.stdout.write(
                "The demo organization has no cards yet: connect KnowBe4, map the customers "
                "and finish the setup; run this again after the first sync reconciled."
            )
            return
        CountHistory.objects.bulk_create(rows, batch_size=1000)
        self.stdout.write(
            f"Demo data: {len(rows)} invented change points for {filled} cards of "
            f"{organization.name} (cards with older history are left alone)."
        )
