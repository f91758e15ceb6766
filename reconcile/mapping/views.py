from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from integrations.models import VendorAccount, VendorConnection, VendorService
from psa.models import PSACompany, PSAProduct
from reconcile.core.fragments import fingerprint
from reconcile.core.signals import request_sync
from reconcile.mapping import services
from reconcile.mapping.models import (
    AccountMapping,
    MappingState,
    ServiceMapping,
)
from reconcile.tenancy.access import get_for_org, member_required
from reconcile.tenancy.models import Role

FILTERS = {
    "unmapped": Q(mapping__isnull=True),
    "mapped": Q(mapping__state=MappingState.MAPPED),
    "excluded": Q(mapping__state=MappingState.EXCLUDED),
    "all": Q(),
}
PAGE = 30


def _search(queryset, query: str, *fields: str):
    """Search from two characters on, over `fields`."""
    if len(query) < 2:
        return queryset
    condition = Q()
    for field in fields:
        condition |= Q(**{f"{field}__icontains": query})
    return queryset.filter(condition)


def _prepare_cards(organization, accounts, suggested=None):
    """Give each account of one page what its card shows: `mapping_or_none` (a template
    reading a missing one-to-one row pays for an exception and a dir() each time) and
    `suggestion`, (company, score) or None. `suggested` holds the suggestions of every
    account, else they are found for the page's unmapped ones."""
    for account in accounts:
        account.mapping_or_none = getattr(account, "mapping", None)
    if suggested is None:
        unmapped = [a for a in accounts if a.mapping_or_none is None]
        found = services.suggestions(organization, unmapped) if unmapped else []
        suggested = {a.pk: (c, score) for a, c, score, _ in found}
    for account in accounts:
        account.suggestion = suggested.get(account.pk)
        # The suggested company's own row, not its repr: two companies may share a name.
        account.fingerprint = fingerprint(account, account.suggestion)


def _company_page(companies, number):
    """One page of companies, each with how many accounts are mapped to it (counted for the
    page only: grouping every company to show thirty cost more than the rest)."""
    page = Paginator(companies, PAGE).get_page(number)
    page.object_list = list(page.object_list)
    mapped = dict(
        AccountMapping.objects.filter(psa_company__in=page.object_list, state=MappingState.MAPPED)
        .values_list("psa_company")
        .annotate(count=Count("id"))
    )
    for company in page.object_list:
        company.mapped = mapped.get(company.pk, 0)
    return page


@member_required()
def accounts(request):
    organization = request.organization
    setup = _setup_connection(request)
    if setup and not setup.setup_finished_at and request.membership.has_role(Role.BILLING):
        # The first setup maps identical names by itself and says how many.
        mapped = services.auto_map(organization, request.user)
        if mapped:
            messages.success(
                request,
                f"{len(mapped)} customer{'s were' if len(mapped) != 1 else ' was'} "
                "mapped automatically: the names are identical in KnowBe4 and the PSA.",
            )
    services.refresh_keys(VendorAccount, organization)
    services.refresh_keys(PSACompany, organization)
    chosen = request.GET.get("filter", "unmapped")
    query = request.GET.get("q", "").strip()[:100]
    rows = (
        VendorAccount.objects.filter(organization=organization, missing_since=None)
        .select_related("connection", "mapping__psa_company")
        .defer("raw", "connection__secrets_encrypted", "mapping__psa_company__raw")
        .order_by("name", "id")
    )
    rows = _search(rows, query, "name", "domain")
    if chosen == "suggested":
        suggested = {a.pk: (c, score) for a, c, score, _ in services.suggestions(organization)}
        rows = rows.filter(pk__in=suggested)
    else:
        rows = rows.filter(FILTERS.get(chosen, FILTERS["unmapped"]))
    page = Paginator(rows, PAGE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    _prepare_cards(organization, page.object_list, suggested if chosen == "suggested" else None)
    company_query = request.GET.get("cq", "").strip()[:100]
    companies = _search(
        services.live_companies(organization).defer("raw"), company_query, "name", "identifier"
    ).order_by("name", "id")
    context = {
        "page": page,
        "query": query,
        "filter": chosen,
        "filters": [*FILTERS, "suggested"],
        "companies": _company_page(companies, request.GET.get("cpage")),
        "company_query": company_query,
        "unmapped_count": page.paginator.count
        if chosen == "unmapped" and len(query) < 2  # the page's own rows: counted already
        else services.unmapped_accounts(organization).count(),
        "can_map": request.membership.has_role(Role.BILLING),
        "setup": setup,
    }
    if request.htmx and request.htmx.target in ("account-cards", "company-list"):
        part = "cards" if request.htmx.target == "account-cards" else "companies"
        return render(request, f"mapping/accounts.html#{part}", context)
    return render(request, "mapping/accounts.html", context)


def _card(request, account, status=200):
    """The account's card after a change, and a trigger that refreshes the counter."""
    account = VendorAccount.objects.select_related("connection", "mapping__psa_company").get(
        pk=account.pk
    )
    _prepare_cards(request.organization, [account])
    response = render(
        request,
        "mapping/accounts.html#card",
        {
            "account": account,
            "can_map": True,
        },
        status=status,
    )
    response["HX-Trigger"] = "mapping-changed"
    return response


def _done(request, account):
    if request.htmx:
        return _card(request, account)
    return redirect("mapping:accounts")


def _account_and_company(request, account_id):
    """The live account of the URL and the live company posted as company_id (both of the
    current organization, else 404); the company is None when none was posted."""
    account = get_for_org(VendorAccount, request, pk=account_id, missing_since=None)
    company_id = request.POST.get("company_id", "")
    if not company_id.isdigit():
        return account, None
    return account, get_for_org(
        services.live_companies(request.organization), request, pk=company_id
    )


NO_COMPANY = "Choose the PSA company."


@require_POST
@member_required(Role.BILLING)
def map_account(request, account_id):
    account, company = _account_and_company(request, account_id)
    if company is None:
        return HttpResponseBadRequest(NO_COMPANY)
    services.map_account(account, company, request.user)
    return _done(request, account)


@require_POST
@member_required(Role.BILLING)
def accept_suggestion(request, account_id):
    account, company = _account_and_company(request, account_id)
    if company is None:
        return HttpResponseBadRequest(NO_COMPANY)
    try:
        score = float(request.POST.get("score", ""))
    except ValueError:
        score = None
    services.accept_suggestion(account, company, request.user, score=score)
    return _done(request, account)


@require_POST
@member_required(Role.BILLING)
def reject_suggestion(request, account_id):
    account, company = _account_and_company(request, account_id)
    if company is None:
        return HttpResponseBadRequest(NO_COMPANY)
    services.reject_suggestion(account, company, request.user)
    return _done(request, account)


@require_POST
@member_required(Role.BILLING)
def exclude_account(request, account_id):
    account = get_for_org(VendorAccount, request, pk=account_id, missing_since=None)
    services.exclude_account(account, request.user)
    return _done(request, account)


@require_POST
@member_required(Role.BILLING)
def unmap_account(request, account_id):
    mapping = get_for_org(
        AccountMapping.objects.select_related("vendor_account"),
        request,
        vendor_account_id=account_id,
    )
    services.unmap_account(mapping, request.user)
    return _done(request, mapping.vendor_account)


@member_required()
def company_choices(request, account_id):
    """Companies matching a search, as buttons that map the account (the keyboard control)."""
    account = get_for_org(VendorAccount, request, pk=account_id)
    query = request.GET.get("company", "").strip()[:100]
    found = (
        _search(
            services.live_companies(request.organization), query, "name", "identifier"
        ).order_by("name")[:8]
        if len(query) >= 2
        else []
    )
    return render(
        request,
        "mapping/_company_choices.html",
        {"account": account, "found": found, "query": query},
    )


@member_required()
def unmapped_counter(request):
    count = services.unmapped_accounts(request.organization).count()
    return HttpResponse(f"{count} unmapped")


@member_required()
def services_page(request):
    organization = request.organization
    setup = _setup_connection(request)
    if setup and not setup.setup_finished_at and request.membership.has_role(Role.BILLING):
        mapped = services.auto_map_services(organization, request.user)
        if mapped:
            messages.success(
                request,
                f"{mapped} service{'s were' if mapped != 1 else ' was'} "
                "mapped automatically: the names are identical.",
            )
    query = request.GET.get("pq", "").strip()[:100]
    products = _search(
        PSAProduct.objects.filter(organization=organization, missing_since=None)
        .select_related("connection")
        .annotate(mapped=Count("mappings")),
        query,
        "name",
        "identifier",
        "description",
    ).order_by("name", "id")
    vendor_services = (
        VendorService.objects.filter(organization=organization)
        .select_related("connection")
        .prefetch_related("mappings__psa_product")
        .order_by("name")
    )
    context = {
        "products": Paginator(products, PAGE).get_page(request.GET.get("page")),
        "product_query": query,
        "vendor_services": vendor_services,
        "can_map": request.membership.has_role(Role.BILLING),
        "setup": setup,
        "finish_missing": services.finish_missing(setup) if setup else "",
    }
    if request.htmx and request.htmx.target == "product-list":
        return render(request, "mapping/services.html#products", context)
    return render(request, "mapping/services.html", context)


def _service_card(request, service):
    service = (
        VendorService.objects.select_related("connection")
        .prefetch_related("mappings__psa_product")
        .get(pk=service.pk)
    )
    return render(request, "mapping/services.html#service", {"service": service, "can_map": True})


@require_POST
@member_required(Role.BILLING)
def map_service(request, service_id):
    service = get_for_org(VendorService, request, pk=service_id)
    product_id = request.POST.get("product_id", "")
    if not product_id.isdigit():
        return HttpResponseBadRequest("Choose the PSA product to map to.")
    product = get_for_org(PSAProduct.objects.filter(missing_since=None), request, pk=product_id)
    services.map_service(service, product, request.user)
    return _service_card(request, service)


@require_POST
@member_required(Role.BILLING)
def unmap_service(request, mapping_id):
    mapping = get_for_org(
        ServiceMapping.objects.select_related("vendor_service"), request, pk=mapping_id
    )
    services.unmap_service(mapping, request.user)
    return _service_card(request, mapping.vendor_service)


@require_POST
@member_required(Role.BILLING)
def exclude_service(request, service_id):
    service = get_for_org(VendorService, request, pk=service_id)
    services.exclude_service(service, request.user)
    return _service_card(request, service)


@member_required()
def product_choices(request, service_id):
    """Products matching a name or Product ID, as buttons that map the service."""
    service = get_for_org(VendorService, request, pk=service_id)
    query = request.GET.get("product", "").strip()[:100]
    found = (
        _search(
            PSAProduct.objects.filter(organization=request.organization, missing_since=None),
            query,
            "name",
            "identifier",
        ).order_by("name")[:8]
        if len(query) >= 2
        else []
    )
    return render(
        request,
        "mapping/_product_choices.html",
        {"service": service, "found": found, "query": query},
    )


class AcceptAllForm(forms.Form):
    minimum = forms.FloatField(
        min_value=50, max_value=100, initial=95, label="Accept every suggestion scoring at least"
    )


@member_required(Role.BILLING)
def accept_all(request):
    """Show the suggestions a minimum score would accept; accept them when confirmed."""
    form = AcceptAllForm(request.POST or request.GET or None)
    pairs = []
    if form.is_bound and form.is_valid():
        minimum = form.cleaned_data["minimum"]
        pairs = [
            (a, c, s) for a, c, s, _ in services.suggestions(request.organization) if s >= minimum
        ]
        if request.method == "POST" and request.POST.get("confirm"):
            count = services.accept_suggestions(request.organization, pairs, request.user)
            messages.success(request, f"{count} suggestion{'s' if count != 1 else ''} accepted.")
            return redirect("mapping:accounts")
    return render(request, "mapping/accept_all.html", {"form": form, "pairs": pairs})


def _setup_connection(request):
    """The vendor connection being set up (wizard mode), from ?setup=<id>."""
    setup = request.GET.get("setup", "")
    if not setup.isdigit():
        return None
    return get_for_org(VendorConnection, request, pk=setup)


@require_POST
@member_required(Role.BILLING)
def finish(request, connection_id):
    """Finish the setup of a connection: needs one mapped account and one mapped service."""
    connection = get_for_org(VendorConnection, request, pk=connection_id)
    missing = services.finish_missing(connection)
    if missing:
        messages.error(request, missing)
        return redirect(f"{reverse('mapping:services')}?setup={connection.pk}")
    services.finish_setup(connection, request.user)
    request_sync(connection, trigger="finish", actor=request.user)
    messages.success(request, "Setup finished: the first sync is running.")
    return redirect("integrations:detail", connection.pk)
