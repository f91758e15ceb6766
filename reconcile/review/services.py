"""Reconciliation: KnowBe4 active users against the quantity billed in the PSA."""

import datetime
import logging
from collections import defaultdict
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import DateField, Q, Value
from django.utils import timezone
from django_q.tasks import async_task

from integrations.models import UsageSnapshot
from psa.models import BillingLine, PSAProduct
from reconcile.core.bulk import insert_rows, update_rows
from reconcile.mapping.models import AccountMapping, MappingState, ServiceMapping
from reconcile.review.models import (
    BillingRule,
    CompanyTag,
    CountHistory,
    Decision,
    PushItem,
    SeatDiscrepancy,
)
from reconcile.tenancy import audit

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
    "vendor_excluded",
    "computed_at",
]
# Plain strings: rows go to COPY, which adapts str, not Django's choices enums.
RECONCILE, NEW_REVENUE, NO_CHANGE, NO_VENDOR_DATA = (k.value for k in SeatDiscrepancy.Kind)


def vendor_counts(organization) -> tuple[dict[tuple[int, int], int], dict[tuple[int, int], int]]:
    """{(PSA company, PSA product): billable active users} summed over the mapped accounts and
    services, and the users exclusion patterns left out of them (where the vendor says).

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
        "account_id", "service_id", "active_users", "excluded_users"
    )
    counts: dict[tuple[int, int], int] = defaultdict(int)
    excluded: dict[tuple[int, int], int] = defaultdict(int)
    for account_id, service_id, users, left_out in usage:
        if account_id not in company_of:
            continue
        for product_id in products_of.get(service_id, ()):
            key = (company_of[account_id], product_id)
            counts[key] += users or 0
            if left_out is not None:
                excluded[key] += left_out
    return counts, excluded


@transaction.atomic
def reconcile_organization(organization) -> dict[str, int]:
    """Recompute every SeatDiscrepancy of the organization in one set-based pass.

    Lines of the same company and product (seats split over two lines) are compared as one:
    the difference lands on the largest line that can be pushed, the others show no change.
    """
    now = timezone.now()
    today = timezone.localdate()
    counts, excluded = vendor_counts(organization)
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
        # The largest pushable line takes the difference: it can absorb a reduction.
        primary = max(group, key=lambda line: (not line[6], line[3] + line[4]))
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
            target = max(line_billed + delta, Decimal(0))
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
    # Every row gets the excluded users of its company and product, before `computed_at`.
    rows = [row[:-1] + (excluded.get((row[3], row[4])), row[-1]) for row in rows]
    _write(organization, rows)
    summary = defaultdict(int)
    for row in rows:
        summary[row[1]] += 1
    return dict(summary)


HISTORY_FIELDS = [
    "organization_id",
    "line_id",
    "psa_company_id",
    "psa_product_id",
    "day",
    "vendor_count",
    "billed",
]
COMPARED = FIELDS[1:-1]  # kind … monthly_change: what makes a card different
NUMBERS = slice(5, 8)  # vendor_count, billed, target: a change reopens a decision
UNDECIDED = {
    "decision": "",
    "decided_quantity": None,
    "effective_date": None,
    "dismiss_reason": "",
    "decided_by_id": None,
    "decided_at": None,
}


def _key(line_id, company_id, product_id):
    return ("line", line_id) if line_id is not None else ("new", company_id, product_id)


def _write(organization, rows) -> None:
    """Insert new cards, update changed ones, delete vanished ones; unchanged cards keep their
    row and what people decided about them. New and changed numbers become CountHistory
    change points."""
    existing = {
        _key(*row[2:5]): row
        for row in SeatDiscrepancy.objects.filter(organization=organization).values_list(
            "id", *COMPARED
        )
    }
    newest_known = max((row[0] for row in existing.values()), default=0)
    inserts, updates, reopened, history = [], [], [], []
    for row in rows:
        current = existing.pop(_key(*row[2:5]), None)
        if current is None:
            inserts.append(row)
        elif tuple(current[1:]) != row[1:-1]:
            fields = dict(zip(FIELDS, row, strict=True))
            if current[NUMBERS] != row[NUMBERS]:
                reopened.append(SeatDiscrepancy(pk=current[0], **fields, **UNDECIDED))
                history.append(row)
            else:
                updates.append(SeatDiscrepancy(pk=current[0], **fields))
    gone = SeatDiscrepancy.objects.filter(pk__in=[row[0] for row in existing.values()])
    # A card that vanished (line cancelled, mapping removed) counts nothing from today on.
    history += [
        (organization.pk, kind, line_id, company_id, product_id, None, None)
        for kind, line_id, company_id, product_id in gone.values_list(
            "kind", "line_id", "psa_company_id", "psa_product_id"
        )
    ]
    gone.delete()
    insert_rows(SeatDiscrepancy, FIELDS, inserts)
    update_rows(SeatDiscrepancy, updates, FIELDS[1:])
    update_rows(SeatDiscrepancy, reopened, FIELDS[1:] + list(UNDECIDED))
    today = timezone.localdate()
    insert_rows(
        CountHistory,
        HISTORY_FIELDS,
        [(row[0], row[2], row[3], row[4], today, row[5], row[6]) for row in history],
    )
    if inserts:
        # New cards (ids above every known one, stamped with this pass's time) get their first
        # point copied inside the database rather than sent a second time.
        _insert_select(
            CountHistory,
            HISTORY_FIELDS,
            SeatDiscrepancy.objects.filter(
                organization=organization, computed_at=inserts[0][-1], id__gt=newest_known
            ).values_list(
                "organization_id",
                "line_id",
                "psa_company_id",
                "psa_product_id",
                Value(today, output_field=DateField()),
                "vendor_count",
                "billed",
            ),
        )


def _insert_select(model, fields: list[str], rows) -> None:
    """INSERT INTO model (fields) SELECT …: rows is a values_list queryset in field order."""
    columns = ", ".join(model._meta.get_field(name).column for name in fields)
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {model._meta.db_table} ({columns}) {sql}", params)


def on_connection_deleted(sender, *, organization, **kwargs) -> None:
    """Cards of a deleted connection's mappings go: reconcile again in the worker."""
    transaction.on_commit(
        lambda: async_task("reconcile.review.tasks.reconcile", organization.pk, group="reconcile")
    )


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


# Decisions: what finance does with a card before anything is pushed.


def first_of_next_month(today: datetime.date | None = None) -> datetime.date:
    """The default effective date: billing in advance, the next period starts on the 1st."""
    today = today or timezone.localdate()
    return (today.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)


def actionable(organization):
    """Cards a person may approve, adjust or dismiss: a difference, and no push under way."""
    return (
        SeatDiscrepancy.objects.filter(organization=organization, kind__in=[RECONCILE, NEW_REVENUE])
        .exclude(push_item__state__in=PushItem.ACTIVE)
        .select_related("psa_company", "psa_product")
    )


def _decide(organization, actor, cards, action: str, **decision) -> int:
    """Set the same decision on every card, with one audit event per card."""
    now = timezone.now()
    changes = []
    for card in cards:
        before = {"decision": card.decision or None, "quantity": _text(card.decided_quantity)}
        for field, value in decision.items():
            setattr(card, field, value(card) if callable(value) else value)
        card.decided_by, card.decided_at = actor, now
        changes.append(
            (
                card,
                before,
                {
                    "decision": card.decision or None,
                    "quantity": _text(card.decided_quantity),
                    "effective_date": _text(card.effective_date),
                    "reason": card.dismiss_reason or None,
                    "vendor_count": card.vendor_count,
                    "billed": _text(card.billed),
                },
            )
        )
    fields = [*decision, "decided_by", "decided_at"]
    SeatDiscrepancy.objects.bulk_update([card for card, _, _ in changes], fields, batch_size=500)
    return audit.record_each(organization, actor, action, changes)


def _text(value):
    return None if value is None else str(value)


@transaction.atomic
def approve(organization, actor, ids, effective_date=None) -> int:
    """Approve the vendor count (the card's target) from `effective_date` (default: the 1st
    of next month). Cards already approved keep their date unless one is given."""
    cards = list(actionable(organization).filter(pk__in=ids).select_for_update(of=("self",)))
    return _decide(
        organization,
        actor,
        cards,
        "review.approve",
        decision=Decision.APPROVED,
        decided_quantity=lambda card: card.target,
        effective_date=lambda card: effective_date or card.effective_date or first_of_next_month(),
        dismiss_reason="",
    )


@transaction.atomic
def adjust(organization, actor, card_id, quantity: Decimal, effective_date) -> SeatDiscrepancy:
    """Approve a quantity of finance's choosing (a contract minimum, a negotiated count)."""
    card = actionable(organization).select_for_update(of=("self",)).get(pk=card_id)
    _decide(
        organization,
        actor,
        [card],
        "review.adjust",
        decision=Decision.ADJUSTED,
        decided_quantity=quantity,
        effective_date=effective_date,
        dismiss_reason="",
    )
    return card


@transaction.atomic
def dismiss(organization, actor, ids, reason: str) -> int:
    """Leave these numbers alone. The card returns when its numbers change."""
    cards = list(actionable(organization).filter(pk__in=ids).select_for_update(of=("self",)))
    return _decide(
        organization,
        actor,
        cards,
        "review.dismiss",
        decision=Decision.DISMISSED,
        decided_quantity=None,
        effective_date=None,
        dismiss_reason=reason,
    )


@transaction.atomic
def undo(organization, actor, ids) -> int:
    """Back to undecided."""
    cards = list(
        actionable(organization)
        .filter(pk__in=ids)
        .exclude(decision="")
        .select_for_update(of=("self",))
    )
    return _decide(
        organization,
        actor,
        cards,
        "review.undo",
        decision="",
        decided_quantity=None,
        effective_date=None,
        dismiss_reason="",
    )


@transaction.atomic
def set_effective_date(organization, actor, ids, effective_date) -> int:
    """Bulk Set Effective Date (arrears billing): on the approved cards among `ids`."""
    cards = list(
        actionable(organization)
        .filter(pk__in=ids, decision__in=[Decision.APPROVED, Decision.ADJUSTED])
        .select_for_update(of=("self",))
    )
    return _decide(
        organization, actor, cards, "review.effective_date", effective_date=effective_date
    )


@transaction.atomic
def tag_companies(organization, actor, ids, name: str) -> int:
    """Put a tag on the customers of the selected cards."""
    company_ids = set(
        SeatDiscrepancy.objects.filter(organization=organization, pk__in=ids).values_list(
            "psa_company_id", flat=True
        )
    )
    have = set(
        CompanyTag.objects.filter(psa_company_id__in=company_ids, name=name).values_list(
            "psa_company_id", flat=True
        )
    )
    tags = CompanyTag.objects.bulk_create(
        CompanyTag(organization=organization, psa_company_id=company_id, name=name)
        for company_id in sorted(company_ids - have)
    )
    audit.record_each(
        organization, actor, "review.tag", [(tag, None, {"tag": name}) for tag in tags]
    )
    return len(tags)


@transaction.atomic
def set_rule(organization, actor, line, values: dict) -> BillingRule:
    """Save a line's billing rule, then reconcile so its card reflects it at once."""
    rule = BillingRule.objects.filter(line=line).first() or BillingRule(
        organization=organization, line=line
    )
    before = {field: _text(getattr(rule, field)) for field in values} if rule.pk else None
    for field, value in values.items():
        setattr(rule, field, value)
    rule.updated_by, rule.updated_at = actor, timezone.now()
    rule.save()
    audit.record(
        organization,
        actor,
        "review.rule",
        line,
        before=before,
        after={field: _text(value) for field, value in values.items()},
    )
    reconcile_organization(organization)
    return rule
