"""Reconciliation: KnowBe4 active users against the quantity billed in the PSA."""

import logging
from collections import defaultdict
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from integrations.models import UsageSnapshot
from psa.models import BillingLine, PSAProduct
from reconcile.bulk import insert_rows
from reconcile.mapping.models import AccountMapping, MappingState, ServiceMapping
from reconcile.review.models import SeatDiscrepancy

logger = logging.getLogger(__name__)

FIELDS = [
    "organization_id",
    "kind",
    "line_id",
    "psa_company_id",
    "psa_product_id",
    "vendor_count",
    "billed",
    "target",
    "delta",
    "unit_price",
    "monthly_change",
    "computed_at",
]
# Plain strings: rows go to COPY, which adapts str, not Django's choices enums.
RECONCILE, NEW_REVENUE, NO_CHANGE, NO_VENDOR_DATA = (k.value for k in SeatDiscrepancy.Kind)


def vendor_counts(organization) -> dict[tuple[int, int], int]:
    """{(PSA company, PSA product): active users} summed over the mapped accounts and services.

    An account's usage is its current change points (one per service it holds now).
    """
    company_of = dict(
        AccountMapping.objects.filter(
            organization=organization,
            state=MappingState.MAPPED,
            vendor_account__missing_since=None,
        ).values_list("vendor_account_id", "psa_company_id")
    )
    products_of = defaultdict(list)
    for service_id, product_id in ServiceMapping.objects.filter(
        organization=organization, state=MappingState.MAPPED
    ).values_list("vendor_service_id", "psa_product_id"):
        products_of[service_id].append(product_id)
    usage = UsageSnapshot.objects.filter(organization=organization, is_current=True).values_list(
        "account_id", "service_id", "active_users"
    )
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for account_id, service_id, users in usage:
        if account_id not in company_of:
            continue
        for product_id in products_of.get(service_id, ()):
            counts[(company_of[account_id], product_id)] += users or 0
    return counts


@transaction.atomic
def reconcile_organization(organization) -> dict[str, int]:
    """Recompute every SeatDiscrepancy of the organization in one set-based pass.

    Lines of the same company and product (seats split over two lines) are compared as one:
    the difference lands on the first line that can be pushed, the others show no change.
    """
    now = timezone.now()
    today = timezone.localdate()
    counts = vendor_counts(organization)
    mapped_companies = set(
        AccountMapping.objects.filter(
            organization=organization, state=MappingState.MAPPED
        ).values_list("psa_company_id", flat=True)
    )
    mapped_products = set(
        ServiceMapping.objects.filter(
            organization=organization, state=MappingState.MAPPED
        ).values_list("psa_product_id", flat=True)
    )
    lines = (
        BillingLine.objects.filter(
            organization=organization,
            missing_since=None,
            company__isnull=False,
            product__isnull=False,
        )
        .filter(Q(cancelled_date__isnull=True) | Q(cancelled_date__gt=today))
        .values_list(
            "id",
            "company_id",
            "product_id",
            "quantity",
            "included_quantity",
            "unit_price",
            "read_only_reason",
            "rule__exclude_users",
            "rule__minimum_quantity",
        )
        .order_by("id")
    )
    groups = defaultdict(list)
    for line in lines:
        if line[1] in mapped_companies and line[2] in mapped_products:
            groups[(line[1], line[2])].append(line)
    rows = []
    organization_id = organization.pk
    for key, group in groups.items():
        primary = next((line for line in group if not line[6]), group[0])
        billed = sum((line[3] + line[4] for line in group), Decimal(0))
        vendor = counts.get(key)
        for line in group:
            line_billed = line[3] + line[4]
            if line is not primary:
                kind = NO_CHANGE if vendor is not None else NO_VENDOR_DATA
                rows.append(
                    (
                        organization_id,
                        kind,
                        line[0],
                        key[0],
                        key[1],
                        vendor,
                        line_billed,
                        line_billed,
                        Decimal(0),
                        line[5],
                        Decimal(0),
                        now,
                    )
                )
                continue
            if vendor is None:
                rows.append(
                    (
                        organization_id,
                        NO_VENDOR_DATA,
                        line[0],
                        key[0],
                        key[1],
                        None,
                        line_billed,
                        None,
                        None,
                        line[5],
                        None,
                        now,
                    )
                )
                continue
            wanted = Decimal(max(vendor - (line[7] or 0), 0))
            if line[8] is not None:
                wanted = max(wanted, line[8])
            delta = wanted - billed
            target = line_billed + delta
            kind = NO_CHANGE if delta == 0 else RECONCILE
            money = (delta * line[5]).quantize(Decimal("0.01")) if line[5] is not None else None
            rows.append(
                (
                    organization_id,
                    kind,
                    line[0],
                    key[0],
                    key[1],
                    vendor,
                    line_billed,
                    target,
                    delta,
                    line[5],
                    money,
                    now,
                )
            )
    prices = dict(
        PSAProduct.objects.filter(organization=organization).values_list("id", "unit_price")
    )
    for (company_id, product_id), vendor in counts.items():
        if (company_id, product_id) not in groups and vendor:
            price = prices.get(product_id)
            money = (vendor * price).quantize(Decimal("0.01")) if price is not None else None
            rows.append(
                (
                    organization_id,
                    NEW_REVENUE,
                    None,
                    company_id,
                    product_id,
                    vendor,
                    Decimal(0),
                    Decimal(vendor),
                    Decimal(vendor),
                    price,
                    money,
                    now,
                )
            )
    _write(organization, rows)
    summary = defaultdict(int)
    for row in rows:
        summary[row[1]] += 1
    return dict(summary)


COMPARED = FIELDS[1:-1]  # kind … monthly_change: what makes a card different


def _key(line_id, company_id, product_id):
    return ("line", line_id) if line_id is not None else ("new", company_id, product_id)


def _write(organization, rows) -> None:
    """Insert new cards, update changed ones, delete vanished ones; unchanged cards keep their
    row (and, later, what people decided about them)."""
    existing = {
        _key(*row[2:5]): row
        for row in SeatDiscrepancy.objects.filter(organization=organization).values_list(
            "id", *COMPARED
        )
    }
    inserts, updates = [], []
    for row in rows:
        current = existing.pop(_key(*row[2:5]), None)
        if current is None:
            inserts.append(row)
        elif tuple(current[1:]) != row[1:-1]:
            updates.append(SeatDiscrepancy(pk=current[0], **dict(zip(FIELDS, row, strict=True))))
    SeatDiscrepancy.objects.filter(pk__in=[row[0] for row in existing.values()]).delete()
    insert_rows(SeatDiscrepancy, FIELDS, inserts)
    SeatDiscrepancy.objects.bulk_update(updates, FIELDS[1:], batch_size=1000)


def on_sync_succeeded(sender, *, run, **kwargs) -> None:
    """Recompute the discrepancies with the fresh data (in the worker, after the run). A
    failure here is logged on the run and leaves the previous discrepancies as they were."""
    try:
        summary = reconcile_organization(run.organization)
    except Exception as error:
        logger.exception(
            "Reconciling organization %s after run %s failed", run.organization_id, run.pk
        )
        run.note(
            f"Reconciliation failed ({type(error).__name__}); the previous results stay.",
            level="error",
        )
    else:
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(summary.items()))
        run.note(f"Reconciled: {counts or 'nothing mapped yet'}.")
    run.save(update_fields=["log"])
