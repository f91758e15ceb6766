"""Test Mode and pushes: the report of what would be sent, confirming it, the batch page."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from reconcile.review import push
from reconcile.review.cards import PAGE
from reconcile.review.forms import ApproveForm
from reconcile.review.models import PushBatch, PushItem
from reconcile.review.views import ACT, _context, _csv
from reconcile.tenancy.access import get_for_org, member_required


@require_POST
@member_required(*ACT)
def test_mode(request):
    batch = push.test_mode(request.organization, request.user)
    if not batch.items.exists():
        messages.warning(request, "Nothing is approved yet: approve or adjust cards first.")
        return redirect("review:index")
    return redirect("review:batch", batch.pk)


def _batch_context(request, batch) -> dict:
    items = list(batch.items.all())
    states = {}
    for item in items:
        states[item.state] = states.get(item.state, 0) + 1
    sendable = [i for i in items if i.state != PushItem.State.BLOCKED]
    settled = sum(
        n
        for state, n in states.items()
        if state not in (*PushItem.ACTIVE, PushItem.State.PLANNED, PushItem.State.BLOCKED)
    )
    return _context(
        request,
        batch=batch,
        items=items,
        states={PushItem.State(state).label: n for state, n in states.items()},
        blocked=states.get(PushItem.State.BLOCKED, 0),
        sendable=len(sendable),
        settled=settled,
        percent=round(100 * settled / len(sendable)) if sendable else 100,
        money=sum((i.monthly_change or 0) for i in sendable),
        retryable=sum(states.get(s, 0) for s in PushItem.RETRYABLE),
    )


@member_required()
def batch(request, batch_id):
    batch = get_for_org(PushBatch, request, pk=batch_id)
    push.recover_stale(request.organization)
    batch.refresh_from_db()
    context = _batch_context(request, batch)
    if request.htmx and request.htmx.target == "batch-live":
        return render(request, "review/batch.html#live", context)
    return render(request, "review/batch.html", context)


@require_POST
@member_required(*ACT)
def batch_effective_date(request, batch_id):
    batch = get_for_org(PushBatch.objects.filter(state=PushBatch.State.DRAFT), request, pk=batch_id)
    form = ApproveForm(request.POST)
    if not form.is_valid() or not form.cleaned_data["effective_date"]:
        messages.error(
            request,
            form.errors.get("effective_date", ["Pick the effective date."])[0],
        )
        return redirect("review:batch", batch.pk)
    push.set_batch_effective_date(batch, request.user, form.cleaned_data["effective_date"])
    # The report shows what will be sent: build it again with the new date.
    fresh = push.test_mode(request.organization, request.user)
    messages.success(request, "Effective date set; the report below shows it.")
    return redirect("review:batch", fresh.pk)


@require_POST
@member_required(*ACT)
def confirm(request, batch_id):
    batch = get_for_org(PushBatch, request, pk=batch_id)
    try:
        queued = push.confirm(batch, request.user)
    except push.BatchNotConfirmable as error:
        messages.error(request, str(error))
        return redirect("review:batch", batch.pk)
    messages.success(request, f"{queued} line{'s' if queued != 1 else ''} queued for the PSA.")
    return redirect("review:batch", batch.pk)


@require_POST
@member_required(*ACT)
def discard(request, batch_id):
    batch = get_for_org(PushBatch.objects.filter(state=PushBatch.State.DRAFT), request, pk=batch_id)
    push.discard(batch, request.user)
    messages.info(request, "Test Mode report discarded; nothing was sent. Approvals stay.")
    return redirect("review:index")


@require_POST
@member_required(*ACT)
def retry(request, batch_id):
    batch = get_for_org(PushBatch, request, pk=batch_id)
    item_ids = [int(i) for i in request.POST.getlist("item") if i.isdigit()] or None
    count = push.retry(batch, request.user, item_ids)
    if count:
        messages.success(request, f"{count} line{'s' if count != 1 else ''} queued again.")
    else:
        messages.warning(request, "Nothing to retry.")
    return redirect("review:batch", batch.pk)


@member_required()
def batch_csv(request, batch_id):
    batch = get_for_org(PushBatch, request, pk=batch_id)
    currency = request.organization.currency

    def rows():
        yield [
            "PSA",
            "Customer",
            "Agreement",
            "Product",
            "Current quantity",
            "New quantity",
            "Effective date",
            f"Monthly change ({currency})",
            "Status",
            "Reason or PSA answer",
        ]
        for item in batch.items.all().iterator():
            yield [
                item.psa_name,
                item.company_name,
                item.container_name,
                item.product_name,
                item.current_quantity,
                item.new_quantity,
                item.effective_date or "",
                item.monthly_change,
                "Will be sent"
                if item.state == PushItem.State.PLANNED
                else item.get_state_display(),
                item.message,
            ]

    return _csv(rows(), f"trueup-test-mode-{batch.pk}.csv")


@member_required()
def batches(request):
    rows = (
        PushBatch.objects.filter(organization=request.organization)
        .exclude(state=PushBatch.State.CANCELLED)
        .select_related("created_by", "confirmed_by")
        .annotate(
            lines=Count("items"),
            confirmed=Count("items", filter=Q(items__state=PushItem.State.CONFIRMED)),
            problems=Count(
                "items",
                filter=Q(
                    items__state__in=[
                        PushItem.State.REJECTED,
                        *PushItem.RETRYABLE,
                    ]
                ),
            ),
        )
    )
    page = Paginator(rows.order_by("-created_at", "-id"), PAGE).get_page(request.GET.get("page"))
    return render(request, "review/batches.html", _context(request, page=page))
