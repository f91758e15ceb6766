import csv

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import Abs
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from psa.models import (
    BillingContainer,
    BillingLine,
    PSACompany,
    PSAConnection,
    PSAProduct,
    QuantityPush,
)
from reconcile.review import push, services
from reconcile.review.cards import PAGE, rendered, with_related
from reconcile.review.forms import AdjustForm, ApproveForm, BillingRuleForm, BulkForm, DismissForm
from reconcile.review.models import (
    BillingRule,
    CompanyTag,
    CountHistory,
    Decision,
    SeatDiscrepancy,
)
from reconcile.tenancy.access import get_for_org, member_required
from reconcile.tenancy.models import Role

Kind = SeatDiscrepancy.Kind
ACT = (Role.FINANCE,)  # owners too: has_role lets owners do everything
KINDS = {
    "": ("Needs a decision", [Kind.RECONCILE, Kind.NEW_REVENUE]),
    **{kind.value: (kind.label, [kind.value]) for kind in Kind},
    "all": ("All cards", [k.value for k in Kind]),
}
STATES = {
    "open": ("Open", ~Q(decision=Decision.DISMISSED)),
    "approved": ("Approved, not pushed", Q(decision__in=[Decision.APPROVED, Decision.ADJUSTED])),
    "dismissed": ("Dismissed", Q(decision=Decision.DISMISSED)),
    "pushed": ("Pushed", Q(push_item__isnull=False)),
    "all": ("Any", Q()),
}
SORTS = {
    "money": ("Money impact", [Abs("monthly_change").desc(nulls_last=True)]),
    "delta": ("Seat difference", [Abs("delta").desc(nulls_last=True)]),
    "name": ("Customer name", ["psa_company__name", "psa_product__name"]),
}
GROUPS = {"": "No grouping", "company": "Customer", "product": "Product"}
DIRECTIONS = {"under": Q(delta__gt=0), "over": Q(delta__lt=0)}


def filtered_cards(request):
    """The cards the page's filters select, and the filters as chosen."""
    get = request.GET
    chosen = {
        "kind": get.get("kind", "") if get.get("kind", "") in KINDS else "",
        "state": get.get("state", "open") if get.get("state") in STATES else "open",
        "sort": get.get("sort") if get.get("sort") in SORTS else "money",
        "group": get.get("group", "") if get.get("group", "") in GROUPS else "",
        "direction": get.get("direction", "") if get.get("direction") in DIRECTIONS else "",
        "q": get.get("q", "").strip()[:100],
        "tag": get.get("tag", "").strip()[:40],
        "connection": _int(get.get("connection")),
        "company": _int(get.get("company")),
        "product": _int(get.get("product")),
        "view": "table" if get.get("view") == "table" else "cards",
    }
    cards = SeatDiscrepancy.objects.filter(
        organization=request.organization, kind__in=KINDS[chosen["kind"]][1]
    ).filter(STATES[chosen["state"]][1])
    if chosen["direction"]:
        cards = cards.filter(DIRECTIONS[chosen["direction"]])
    if chosen["connection"]:
        cards = cards.filter(psa_company__connection_id=chosen["connection"])
    if chosen["company"]:
        cards = cards.filter(psa_company_id=chosen["company"])
    if chosen["product"]:
        cards = cards.filter(psa_product_id=chosen["product"])
    if chosen["tag"]:
        cards = cards.filter(psa_company__tags__name=chosen["tag"])
    if len(chosen["q"]) >= 2:
        # Each table is searched once in a subquery, rather than every joined card row; on
        # PostgreSQL trigram indexes serve the LIKEs (psa migration 0005).
        q, organization = chosen["q"], request.organization
        cards = cards.filter(
            Q(
                psa_company__in=PSACompany.objects.filter(
                    organization=organization, name__icontains=q
                )
            )
            | Q(
                psa_product__in=PSAProduct.objects.filter(organization=organization).filter(
                    Q(name__icontains=q) | Q(identifier__icontains=q)
                )
            )
            | Q(
                line__in=BillingLine.objects.filter(
                    organization=organization, description__icontains=q
                )
            )
            | Q(
                line__in=BillingLine.objects.filter(
                    organization=organization,
                    container__in=BillingContainer.objects.filter(
                        organization=organization, name__icontains=q
                    ),
                )
            )
        )
    order = list(SORTS[chosen["sort"]][1])
    if chosen["group"] == "company":
        order = ["psa_company__name", "psa_company_id", *order]
    elif chosen["group"] == "product":
        order = ["psa_product__name", "psa_product_id", *order]
    return cards.order_by(*order, "id"), chosen


def _int(value) -> int | None:
    return int(value) if value and str(value).isdigit() else None


def _page_of_cards(request, cards, count, view):
    """One page of the filtered cards (`count` of them, known from the totals: no second
    count), rendered. The page's ids are chosen on the cards (and the names they sort by)
    alone; sorting thousands of rows joined to six tables cost more than the rest of the
    page."""
    paginator = Paginator(cards.values_list("id", flat=True), PAGE)
    paginator.count = count  # a cached_property: this value stands in for its query
    page = paginator.get_page(request.GET.get("page"))
    page.object_list = rendered(list(page.object_list), _card_context(request, view=view))
    return page


def _card_context(request, **extra) -> dict:
    """What a card's partial reads besides the card: all of it is in its cache key."""
    # The customer link keeps the page's filters but page and company (which it sets).
    link_filters = request.GET.copy()
    for name in ("page", "company"):
        link_filters.pop(name, None)
    return {
        "can_act": request.membership.has_role(*ACT),
        "currency": request.organization.currency,
        "default_effective_date": services.first_of_next_month(),
        "link_filters": link_filters.urlencode(),
        **extra,
    }


def _totals(cards) -> dict:
    under, over = Q(delta__gt=0), Q(delta__lt=0)
    return cards.order_by().aggregate(
        count=Count("id"),
        under_seats=Sum("delta", filter=under),
        under_money=Sum("monthly_change", filter=under),
        over_seats=Sum("delta", filter=over),
        over_money=Sum("monthly_change", filter=over),
    )


def _approved_summary(organization) -> dict:
    """How many changes wait for Test Mode, and what they change per month (the approved or
    adjusted quantity, not the card's own proposal)."""
    change = ExpressionWrapper(
        (F("decided_quantity") - F("billed")) * F("unit_price"),
        output_field=DecimalField(max_digits=20, decimal_places=4),
    )
    return (
        push.approved_cards(organization).order_by().aggregate(count=Count("id"), money=Sum(change))
    )


def _context(request, **extra) -> dict:
    return _card_context(
        request,
        can_set_rules=request.membership.has_role(Role.BILLING, Role.FINANCE),
        **extra,
    )


@member_required()
def index(request):
    push.recover_stale(request.organization)
    if request.htmx and request.htmx.target == "approved-bar":
        return render(
            request,
            "review/index.html#approved_bar",
            _context(request, approved=_approved_summary(request.organization)),
        )
    cards, chosen = filtered_cards(request)
    totals = _totals(cards)
    page = _page_of_cards(request, cards, totals["count"], chosen["view"])
    context = _context(
        request,
        page=page,
        chosen=chosen,
        totals=totals,
        approved=_approved_summary(request.organization),
        kinds={key: label for key, (label, _) in KINDS.items()},
        states={key: label for key, (label, _) in STATES.items()},
        sorts={key: label for key, (label, _) in SORTS.items()},
        groups=GROUPS,
    )
    if request.htmx and request.htmx.target == "results":
        return render(request, "review/index.html#results", context)
    organization = request.organization
    context |= {
        "connections": PSAConnection.objects.filter(organization=organization),
        "products": PSAProduct.objects.filter(
            organization=organization, pk__in=_mapped_products(organization)
        ).order_by("name"),
        "tags": CompanyTag.objects.filter(organization=organization)
        .values_list("name", flat=True)
        .distinct()
        .order_by("name"),
        "company": PSACompany.objects.filter(
            organization=organization, pk=chosen["company"]
        ).first()
        if chosen["company"]
        else None,
    }
    return render(request, "review/index.html", context)


def _mapped_products(organization):
    return SeatDiscrepancy.objects.filter(organization=organization).values("psa_product_id")


def _card_response(request, card_id, status=200, **extra):
    card = with_related(SeatDiscrepancy.objects.filter(organization=request.organization)).get(
        pk=card_id
    )
    view = "table" if request.POST.get("view", request.GET.get("view")) == "table" else "cards"
    context = _context(request, card=card, view=view, **extra)
    response = render(request, "review/index.html#card", context, status=status)
    response["HX-Trigger"] = "review-changed"
    return response


def _actionable_or_404(request, card_id) -> SeatDiscrepancy:
    return get_for_org(services.actionable(request.organization), request, pk=card_id)


@require_POST
@member_required(*ACT)
def approve(request, card_id):
    card = _actionable_or_404(request, card_id)
    form = ApproveForm(request.POST)
    if not form.is_valid():
        return _card_response(request, card.pk, status=422, approve_form=form)
    services.approve(
        request.organization, request.user, [card.pk], form.cleaned_data["effective_date"]
    )
    return _card_response(request, card.pk)


@require_POST
@member_required(*ACT)
def adjust(request, card_id):
    card = _actionable_or_404(request, card_id)
    form = AdjustForm(request.POST, card=card)
    if not form.is_valid():
        return _card_response(request, card.pk, status=422, adjust_form=form)
    services.adjust(
        request.organization,
        request.user,
        card.pk,
        form.cleaned_data["quantity"],
        form.cleaned_data["effective_date"],
    )
    return _card_response(request, card.pk)


@require_POST
@member_required(*ACT)
def dismiss(request, card_id):
    card = _actionable_or_404(request, card_id)
    form = DismissForm(request.POST)
    if not form.is_valid():
        return _card_response(request, card.pk, status=422, dismiss_form=form)
    services.dismiss(request.organization, request.user, [card.pk], form.cleaned_data["reason"])
    return _card_response(request, card.pk)


@require_POST
@member_required(*ACT)
def undo(request, card_id):
    card = _actionable_or_404(request, card_id)
    services.undo(request.organization, request.user, [card.pk])
    return _card_response(request, card.pk)


@member_required()
def card(request, card_id):
    """One card, as it is now (polled while its push runs)."""
    get_for_org(SeatDiscrepancy, request, pk=card_id)
    return _card_response(request, card_id)


@member_required()
def details(request, card_id):
    """The count history chart and push history of one card's line."""
    card = get_for_org(with_related(SeatDiscrepancy.objects), request, pk=card_id)
    history = CountHistory.objects.filter(organization=request.organization)
    if card.line_id:
        history = history.filter(line_id=card.line_id)
    else:
        history = history.filter(
            line=None, psa_company_id=card.psa_company_id, psa_product_id=card.psa_product_id
        )
    points = list(history.order_by("day", "id").values_list("day", "vendor_count", "billed"))
    by_day = {day: (used, billed) for day, used, billed in points}  # the day's last point
    chart = {
        "labels": [f"{day:%Y-%m-%d}" for day in by_day],
        "series": [
            {
                "label": "KnowBe4 active users",
                "data": [used for used, _ in by_day.values()],
                "color": "#2563eb",
            },
            {
                "label": "Billed in the PSA",
                "data": [
                    float(billed) if billed is not None else None for _, billed in by_day.values()
                ],
                "color": "#db2777",
                "dashed": True,
            },
        ],
    }
    pushes = (
        QuantityPush.objects.filter(
            organization=request.organization, line_id=card.line_id
        ).order_by("-created_at", "-id")[:20]
        if card.line_id
        else []
    )
    rule = getattr(card.line, "rule", None) if card.line_id else None
    return render(
        request,
        "review/_details.html",
        _context(
            request,
            card=card,
            chart=chart,
            chart_id=f"chart-{card.pk}",
            points=len(by_day),
            pushes=pushes,
            rule_form=BillingRuleForm(instance=rule) if card.line_id else None,
        ),
    )


@require_POST
@member_required(Role.BILLING, Role.FINANCE)
def set_rule(request, card_id):
    """Save the line's billing rule and reconcile again, so the card shows its effect."""
    card = get_for_org(SeatDiscrepancy.objects.exclude(line=None), request, pk=card_id)
    rule = BillingRule.objects.filter(line_id=card.line_id).first()
    form = BillingRuleForm(request.POST, instance=rule)
    if not form.is_valid():
        card = get_for_org(with_related(SeatDiscrepancy.objects), request, pk=card_id)
        return render(
            request,
            "review/_details.html",
            _context(request, card=card, rule_form=form, chart=None, pushes=None),
            status=422,
        )
    services.set_rule(request.organization, request.user, card.line, form.cleaned_data)
    messages.success(request, "Billing rule saved; the cards were reconciled again.")
    back = f"{reverse('review:index')}?{request.POST.get('back', '')}"
    if request.htmx:
        return HttpResponse(headers={"HX-Redirect": back})
    return redirect(back)


@require_POST
@member_required(*ACT)
def bulk(request):
    form = BulkForm(request.POST)
    back = f"{reverse('review:index')}?{request.POST.get('back', '')}"
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect(back)
    data, organization, user = form.cleaned_data, request.organization, request.user
    ids = data["ids"]
    action = data["action"]
    if action == "approve":
        done = services.approve(organization, user, ids, data["effective_date"])
        messages.success(request, f"{done} approved. Preview them in Test Mode to push.")
    elif action == "dismiss":
        done = services.dismiss(organization, user, ids, data["reason"])
        messages.success(request, f"{done} dismissed.")
    elif action == "undo":
        done = services.undo(organization, user, ids)
        messages.success(request, f"{done} back to undecided.")
    elif action == "effective_date":
        done = services.set_effective_date(organization, user, ids, data["effective_date"])
        messages.success(
            request, f"Effective date {data['effective_date']:%Y-%m-%d} set on {done} approved."
        )
    else:
        done = services.tag_companies(organization, user, ids, data["tag"])
        messages.success(request, f"Tag “{data['tag']}” put on {done} more customers.")
    return redirect(back)


@member_required()
def export(request):
    """The cards of the current filters as CSV (every page)."""
    cards, chosen = filtered_cards(request)
    currency = request.organization.currency
    header = [
        "Type",
        "Customer",
        "Product",
        "PSA",
        "Agreement",
        "Line",
        "KnowBe4 active users (billable)",
        "Excluded users",
        "Billed",
        "Vendor count to bill",
        "Seat difference",
        f"Unit price ({currency})",
        f"Monthly change ({currency})",
        "Decision",
        "Effective date",
        "Reason",
        "Last push",
    ]

    def rows():
        yield header
        for card in with_related(cards).iterator(chunk_size=2000):
            line = card.line
            yield [
                card.get_kind_display(),
                card.psa_company.name,
                str(card.psa_product),
                str(line.connection) if line else "",
                str(line.container) if line else "",
                line.description if line else "",
                "" if card.vendor_count is None else card.vendor_count,
                "" if card.vendor_excluded is None else card.vendor_excluded,
                card.billed,
                card.target,
                card.delta,
                card.unit_price,
                card.monthly_change,
                card.get_decision_display(),
                card.effective_date or "",
                card.dismiss_reason,
                card.push_item.get_state_display() if card.push_item_id else "",
            ]

    return _csv(rows(), "trueup-discrepancies.csv")


class _Echo:
    def write(self, value):
        return value


def _csv(rows, filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
