from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import OuterRef, Q, Subquery
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from psa import services
from psa.forms import ContainerTypesForm, RequestBudgetForm
from psa.models import BillingLine, PSACompany, PSAConnection, PSAProduct, QuantityPush
from psa.providers import PROVIDERS
from reconcile.core.errors import ExternalAPIError
from reconcile.core.signals import request_sync
from reconcile.sync import services as lifecycle
from reconcile.tenancy.access import get_for_org, member_required
from reconcile.tenancy.models import Role


def _form_class(kind: str):
    if kind not in PROVIDERS:
        raise Http404("No such PSA")
    return PROVIDERS[kind].form_class


def _check(kind: str, form):
    """Test the credentials; returns (ConnectionCheck, None) or (None, error message)."""
    adapter = PROVIDERS[kind].adapter_class.for_store(form.settings(), form.secrets())
    try:
        return adapter.test(), None
    except ExternalAPIError as error:
        return None, str(error)
    finally:
        adapter.close()


@member_required(Role.OWNER)
def connect(request, kind):
    form = _form_class(kind)(request.POST or None)
    provider = PROVIDERS[kind]
    if request.method == "POST" and form.is_valid():
        check, error = _check(kind, form)
        if error:
            form.add_error(None, error)
        else:
            connection = lifecycle.connect(
                PSAConnection,
                request.organization,
                request.user,
                kind=kind,
                settings=form.settings() | check.settings,
                secrets=form.secrets(),
                description=form.cleaned_data["description"],
            )
            messages.success(request, check.message)
            return redirect("psa:types", connection.pk)
    context = {"form": form, "kind": kind, "label": provider.label, "provider": provider}
    return render(request, "psa/connect.html", context)


@require_POST
@member_required(Role.OWNER)
def test_connection(request, kind):
    """Answer "does this work?" before anything is saved (htmx partial)."""
    form = _form_class(kind)(request.POST)
    check, error = (None, None)
    if form.is_valid():
        check, error = _check(kind, form)
    else:
        error = "Fill in the marked fields first."
    return render(request, "psa/_test_result.html", {"check": check, "error": error})


@member_required(Role.OWNER)
def choose_types(request, connection_id):
    connection = get_for_org(PSAConnection, request, pk=connection_id)
    try:
        options = connection.adapter().container_types()
    except ExternalAPIError as error:
        return render(request, "psa/types.html", {"connection": connection, "error": str(error)})
    choices = [(option.external_id, option.name) for option in options]
    chosen = connection.container_type_ids or [value for value, _ in choices]
    form = ContainerTypesForm(request.POST or None, choices=choices, initial={"types": chosen})
    if request.method == "POST" and form.is_valid():
        picked = [o for o in options if o.external_id in form.cleaned_data["types"]]
        services.choose_container_types(connection, request.user, picked)
        request_sync(connection, trigger="connect", actor=request.user)
        return redirect("psa:detail", connection.pk)
    return render(request, "psa/types.html", {"connection": connection, "form": form})


@member_required()
def detail(request, connection_id):
    connection = get_for_org(PSAConnection, request, pk=connection_id)
    return _detail(request, connection)


def _detail(request, connection, budget_form=None, status=200):
    lines = BillingLine.objects.filter(connection=connection, missing_since=None)
    budget = connection.settings.get("requests_per_minute")
    concurrency = connection.settings.get("concurrency")
    return render(
        request,
        "psa/detail.html",
        {
            "connection": connection,
            "company_count": PSACompany.objects.filter(
                connection=connection, missing_since=None
            ).count(),
            "product_count": PSAProduct.objects.filter(
                connection=connection, missing_since=None
            ).count(),
            "line_count": lines.count(),
            "read_only_count": lines.exclude(read_only_reason="").count(),
            "runs": connection.sync_runs.all()[:10],
            "budget": budget,
            "budget_default": connection.provider.budget,
            "concurrency": concurrency,
            "concurrency_default": connection.provider.adapter_class.default_concurrency,
            "budget_form": budget_form
            or RequestBudgetForm(
                kind=connection.kind,
                initial={"requests_per_minute": budget, "concurrency": concurrency},
            ),
        },
        status=status,
    )


@require_POST
@member_required(Role.OWNER)
def request_budget(request, connection_id):
    """Owners set the PSA requests per minute TrueUp keeps to (empty: the adapter default)."""
    connection = get_for_org(PSAConnection, request, pk=connection_id)
    form = RequestBudgetForm(request.POST, kind=connection.kind)
    if not form.is_valid():
        return _detail(request, connection, budget_form=form, status=400)
    budget, concurrency = (form.cleaned_data[name] for name in services.BUDGET_SETTINGS)
    services.set_request_budget(connection, request.user, budget, concurrency)
    at_once = connection.concurrency
    messages.success(
        request,
        (
            f"TrueUp now sends at most {budget:,} requests a minute to {connection}"
            if budget
            else f"TrueUp now keeps to the default for {connection}: {connection.provider.budget}"
        )
        + f"; {at_once} request{'s' if at_once != 1 else ''} at once.",
    )
    return redirect("psa:detail", connection.pk)


def _browse(request, connection, queryset, search_fields, template):
    query = request.GET.get("q", "").strip()[:100]
    if query:
        condition = Q()
        for field in search_fields:
            condition |= Q(**{f"{field}__icontains": query})
        queryset = queryset.filter(condition)
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    context = {"connection": connection, "page": page, "query": query}
    if request.htmx and request.htmx.target == "results":
        return render(request, f"{template}#results", context)
    return render(request, template, context)


@member_required()
def companies(request, connection_id):
    connection = get_for_org(PSAConnection, request, pk=connection_id)
    rows = PSACompany.objects.filter(connection=connection, missing_since=None).order_by("name")
    return _browse(request, connection, rows, ["name", "identifier"], "psa/companies.html")


@member_required()
def products(request, connection_id):
    connection = get_for_org(PSAConnection, request, pk=connection_id)
    rows = PSAProduct.objects.filter(connection=connection, missing_since=None).order_by("name")
    return _browse(
        request, connection, rows, ["name", "identifier", "description"], "psa/products.html"
    )


@member_required()
def lines(request, connection_id):
    connection = get_for_org(PSAConnection, request, pk=connection_id)
    last_push = QuantityPush.objects.filter(line=OuterRef("pk")).order_by("-created_at", "-id")
    rows = (
        BillingLine.objects.filter(connection=connection, missing_since=None)
        .select_related("company", "product", "container")
        .annotate(
            last_push_outcome=Subquery(last_push.values("outcome")[:1]),
            last_push_message=Subquery(last_push.values("message")[:1]),
        )
        .order_by("company__name", "id")
    )
    return _browse(
        request,
        connection,
        rows,
        ["company__name", "product__name", "product__identifier", "description"],
        "psa/lines.html",
    )


@member_required()
def pushes(request, connection_id):
    """The push ledger of a connection: every attempt, with what the PSA said."""
    connection = get_for_org(PSAConnection, request, pk=connection_id)
    rows = QuantityPush.objects.filter(line__connection=connection).select_related("line")
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    return render(request, "psa/pushes.html", {"connection": connection, "page": page})
