"""Test Mode and pushing: approved cards become a report, the report becomes PSA writes.

1. `test_mode()` turns the organization's approved cards into a draft PushBatch: one item
   per card with exactly what would be sent, or why it cannot be. Nothing is sent.
2. `confirm()` queues the batch (its items become `queued`, each card points at its item)
   and hands it to the worker.
3. `run_batch()` (the worker) claims each item with a conditional UPDATE, pushes it through
   `psa.services.exchange` (which reads the line first and sends only what is missing,
   then reads it back), up to the connection's concurrency at once over distinct lines, and
   records the outcome on the item; then it reconciles again.

A worker that dies mid-batch leaves the items it had claimed `pushing` (at most twice the
concurrency); `recover_stale()` turns them into `interrupted`, which a person retries.
A retry reads the PSA first, so it never doubles.
"""

import datetime
import logging
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone
from django_q.tasks import async_task

from psa.models import PSAConnection, QuantityPush
from psa.services import exchange, line_key, record_push, refusal_reason, start_push
from reconcile.core.parallel import in_parallel
from reconcile.core.signals import push_batch_finished
from reconcile.review.models import Decision, PushBatch, PushItem, SeatDiscrepancy
from reconcile.review.services import reconcile_organization
from reconcile.tenancy import audit

logger = logging.getLogger(__name__)
CENT = Decimal("0.01")
State = PushItem.State
OUTCOME_STATE = {
    QuantityPush.Outcome.CONFIRMED: State.CONFIRMED,
    QuantityPush.Outcome.REJECTED: State.REJECTED,
    QuantityPush.Outcome.UNCONFIRMED: State.UNCONFIRMED,
    QuantityPush.Outcome.FAILED: State.FAILED,
    QuantityPush.Outcome.REFUSED: State.REJECTED,
}


def approved_cards(organization):
    return (
        SeatDiscrepancy.objects.filter(
            organization=organization, decision__in=[Decision.APPROVED, Decision.ADJUSTED]
        )
        .exclude(push_item__state__in=PushItem.ACTIVE)
        .select_related(
            "psa_company",
            "psa_product",
            "line__connection",
            "line__container",
            "line__product",
        )
        .order_by("psa_company__name", "psa_product__name", "id")
    )


def blocked_reason(card: SeatDiscrepancy, today: datetime.date) -> str:
    """Why this approved card cannot be pushed, or ""."""
    line = card.line
    if line is None:
        return (
            "No agreement line bills this product to this customer: add one in the PSA; "
            "the next sync turns this card into a line TrueUp can push."
        )
    if line.missing_since:
        return "The line is gone from the PSA since the last sync."
    if card.effective_date and card.effective_date < today:
        return f"The effective date {card.effective_date:%Y-%m-%d} is in the past."
    if card.decided_quantity == line.quantity + line.included_quantity:
        return "The PSA already bills this quantity."
    return refusal_reason(line, _to_send(card), line.connection.provider.adapter_class)


def _to_send(card: SeatDiscrepancy):
    """Cards compare billed seats (quantity + included); the PSA line takes the quantity."""
    return card.decided_quantity - card.line.included_quantity


@transaction.atomic
def test_mode(organization, actor) -> PushBatch:
    """The Test Mode report of every approved card; replaces an earlier unconfirmed one."""
    PushBatch.objects.filter(organization=organization, state=PushBatch.State.DRAFT).update(
        state=PushBatch.State.CANCELLED
    )
    batch = PushBatch.objects.create(organization=organization, created_by=actor)
    today = timezone.localdate()
    items = []
    for card in approved_cards(organization):
        line = card.line
        reason = blocked_reason(card, today)
        current = line.quantity if line else None
        new = _to_send(card) if line else card.decided_quantity
        price = card.unit_price
        change = (new - (current or 0)) * price if price is not None and new is not None else None
        items.append(
            PushItem(
                organization=organization,
                batch=batch,
                discrepancy=card,
                line=line,
                psa_name=str(line.connection) if line else "–",
                company_name=card.psa_company.name,
                container_name=str(line.container) if line else "",
                product_name=str(card.psa_product),
                current_quantity=current,
                new_quantity=new,
                effective_date=card.effective_date,
                unit_price=price,
                monthly_change=change.quantize(CENT) if change is not None else None,
                state=State.BLOCKED if reason else State.PLANNED,
                message=reason,
            )
        )
    PushItem.objects.bulk_create(items)
    audit.record(
        organization,
        actor,
        "review.test_mode",
        batch,
        after={"lines": len(items), "blocked": sum(i.state == State.BLOCKED for i in items)},
    )
    return batch


@transaction.atomic
def set_batch_effective_date(batch: PushBatch, actor, effective_date) -> int:
    """Bulk Set Effective Date on a Test Mode report (and on the cards behind it)."""
    items = list(batch.items.filter(state__in=[State.PLANNED, State.BLOCKED]))
    ids = [item.discrepancy_id for item in items if item.discrepancy_id]
    SeatDiscrepancy.objects.filter(pk__in=ids).update(effective_date=effective_date)
    audit.record(
        batch.organization,
        actor,
        "review.effective_date",
        batch,
        after={"effective_date": str(effective_date), "lines": len(ids)},
    )
    return len(ids)


@transaction.atomic
def discard(batch: PushBatch, actor) -> None:
    """Drop a Test Mode report; the approvals behind it stay."""
    PushBatch.objects.filter(pk=batch.pk, state=PushBatch.State.DRAFT).update(
        state=PushBatch.State.CANCELLED
    )
    audit.record(batch.organization, actor, "review.test_mode_discarded", batch)


class BatchNotConfirmable(Exception):
    pass


def confirm(batch: PushBatch, actor) -> int:
    """Queue the report's pushable lines and start the worker. Returns how many were queued."""
    with transaction.atomic():
        claimed = PushBatch.objects.filter(pk=batch.pk, state=PushBatch.State.DRAFT).update(
            state=PushBatch.State.QUEUED, confirmed_by=actor, confirmed_at=timezone.now()
        )
        if not claimed:
            raise BatchNotConfirmable("This report was already confirmed or replaced.")
        items = list(batch.items.filter(state=State.PLANNED).select_for_update())
        busy = set(
            PushItem.objects.filter(
                line_id__in=[i.line_id for i in items], state__in=PushItem.ACTIVE
            ).values_list("line_id", flat=True)
        )
        now = timezone.now()
        for item in items:
            if item.line_id in busy:
                item.state, item.message = State.BLOCKED, "Another push of this line is running."
            else:
                item.state = State.QUEUED
            item.updated_at = now
        PushItem.objects.bulk_update(items, ["state", "message", "updated_at"])
        queued = [item for item in items if item.state == State.QUEUED]
        cards = [
            SeatDiscrepancy(pk=item.discrepancy_id, push_item_id=item.pk, decision="")
            for item in queued
            if item.discrepancy_id
        ]
        SeatDiscrepancy.objects.bulk_update(cards, ["push_item", "decision"], batch_size=500)
        audit.record(
            batch.organization, actor, "review.push_confirmed", batch, after={"lines": len(queued)}
        )
        transaction.on_commit(lambda: _start(batch))
    return len(queued)


def _start(batch: PushBatch) -> None:
    async_task(
        "reconcile.review.tasks.push_batch",
        batch.pk,
        task_name=f"push-batch-{batch.pk}",
        group="push",
    )


@transaction.atomic
def retry(batch: PushBatch, actor, item_ids=None) -> int:
    """Send failed, unconfirmed or interrupted lines again (all of them, or `item_ids`)."""
    recover_stale(batch.organization)
    items = batch.items.filter(state__in=PushItem.RETRYABLE)
    if item_ids is not None:
        items = items.filter(pk__in=item_ids)
    items = list(items.exclude(line__isnull=True))
    busy = set(
        PushItem.objects.filter(
            line_id__in=[i.line_id for i in items], state__in=PushItem.ACTIVE
        ).values_list("line_id", flat=True)
    )
    items = [item for item in items if item.line_id not in busy]
    PushItem.objects.filter(pk__in=[i.pk for i in items]).update(
        state=State.QUEUED, updated_at=timezone.now()
    )
    if items:
        PushBatch.objects.filter(pk=batch.pk).update(state=PushBatch.State.QUEUED, finished_at=None)
        audit.record(
            batch.organization, actor, "review.push_retry", batch, after={"lines": len(items)}
        )
        transaction.on_commit(lambda: _start(batch))
    return len(items)


def run_batch(batch_id: int) -> PushBatch | None:
    """The worker: push every queued item of the batch. Lines of one connection are pushed
    up to its concurrency at once (each line keeps its read -> send -> read back, and one
    item per line is queued at a time); the ledger and the items are written here, in order."""
    claimed = PushBatch.objects.filter(
        pk=batch_id, state__in=[PushBatch.State.QUEUED, PushBatch.State.RUNNING]
    ).update(state=PushBatch.State.RUNNING)
    if not claimed:
        return None
    batch = PushBatch.objects.select_related("organization", "confirmed_by").get(pk=batch_id)
    connections = PSAConnection.objects.filter(
        pk__in=batch.items.filter(state=State.QUEUED).values("line__connection")
    )
    # Each adapter keeps its requests in flight within its connection's concurrency.
    adapters = {connection.pk: connection.adapter() for connection in connections}

    def claimed_items():
        while item := _claim_next(batch):
            line = item.line
            if line.connection_id not in adapters:  # queued again after the batch started
                adapters[line.connection_id] = line.connection.adapter()
            adapter = adapters[line.connection_id]
            push = start_push(line, item.new_quantity, item.effective_date, batch.confirmed_by)
            yield item, push, adapter, refusal_reason(line, item.new_quantity, adapter)

    def send(claimed):
        item, push, adapter, refusal = claimed
        if refusal:
            return claimed, (QuantityPush.Outcome.REFUSED, refusal, None)
        try:
            return claimed, exchange(push, line_key(item.line), adapter)
        except Exception as error:  # a bug: keep the line retryable
            return claimed, error

    limit = max([a.concurrency for a in adapters.values()] or [1])
    try:
        for (item, push, _, _), result in in_parallel(send, claimed_items(), limit):
            _settle_push(batch, item, push, result)
    finally:
        for adapter in adapters.values():
            adapter.close()
    PushBatch.objects.filter(pk=batch.pk, state=PushBatch.State.RUNNING).update(
        state=PushBatch.State.FINISHED, finished_at=timezone.now()
    )
    reconcile_organization(batch.organization)
    batch.refresh_from_db()
    push_batch_finished.send(sender=PushBatch, batch=batch)
    return batch


def _settle_push(batch, item, push, result) -> None:
    if isinstance(result, Exception):
        logger.error("Pushing item %s of batch %s failed", item.pk, batch.pk, exc_info=result)
        _settle(item, State.FAILED, f"TrueUp could not push this line ({type(result).__name__}).")
        return
    try:
        push = record_push(push, *result)
    except Exception as error:  # a database fault: keep the line retryable
        logger.exception("Recording item %s of batch %s failed", item.pk, batch.pk)
        _settle(item, State.FAILED, f"TrueUp could not push this line ({type(error).__name__}).")
        return
    _settle(item, OUTCOME_STATE[push.outcome], push.message, push)


def _claim_next(batch: PushBatch) -> PushItem | None:
    """The next queued item, claimed so a second worker on the same batch skips it."""
    for item_id in batch.items.filter(state=State.QUEUED).values_list("id", flat=True)[:5]:
        claimed = PushItem.objects.filter(pk=item_id, state=State.QUEUED).update(
            state=State.PUSHING, attempts=F("attempts") + 1, updated_at=timezone.now()
        )
        if claimed:
            return PushItem.objects.select_related(
                "line__connection", "line__container", "line__company", "line__product"
            ).get(pk=item_id)
    return None


def _settle(item: PushItem, state: str, message: str, push: QuantityPush | None = None) -> None:
    PushItem.objects.filter(pk=item.pk).update(
        state=state, message=message, push=push, updated_at=timezone.now()
    )


def recover_stale(organization) -> int:
    """Items left `pushing` by a worker that stopped become `interrupted` (retryable), and
    their batches finish. Whether the PSA applied them is unknown until a retry reads it."""
    running = PushBatch.objects.filter(organization=organization, state=PushBatch.State.RUNNING)
    if not running.exists():
        return 0
    cutoff = timezone.now() - timedelta(seconds=settings.TRUEUP_PUSH_STALE_AFTER)
    stale = PushItem.objects.filter(
        organization=organization, state=State.PUSHING, updated_at__lt=cutoff
    )
    batch_ids = set(stale.values_list("batch_id", flat=True))
    count = stale.update(
        state=State.INTERRUPTED,
        message="The worker stopped while pushing this line; whether the PSA applied it is "
        "unknown. Retry reads the line first and sends only what is missing.",
        updated_at=timezone.now(),
    )
    idle = running.annotate(last=Max("items__updated_at")).filter(
        Q(pk__in=batch_ids) | Q(last__lt=cutoff)
    )
    for batch in idle:
        if batch.items.filter(state=State.PUSHING).exists():
            continue  # another of its lines is still being pushed
        if batch.items.filter(state=State.QUEUED).exists():
            PushBatch.objects.filter(pk=batch.pk).update(state=PushBatch.State.QUEUED)
            _start(batch)  # the rest of the batch never started: hand it to a worker again
        else:
            PushBatch.objects.filter(pk=batch.pk).update(
                state=PushBatch.State.FINISHED, finished_at=timezone.now()
            )
    return count
