from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.shortcuts import redirect, render

from integrations import services
from integrations.models import VendorAccount, VendorConnection
from integrations.providers.knowbe4_partner.adapter import PartnerAdapter
from integrations.providers.knowbe4_partner.client import graphql_url, region_label
from integrations.providers.knowbe4_partner.forms import ConnectForm, RotateForm
from integrations.providers.knowbe4_reporting.adapter import site_label
from reconcile.core.errors import ExternalAPIError
from reconcile.core.signals import request_sync
from reconcile.forms import DeleteConnectionForm
from reconcile.tenancy.access import get_for_org, member_required
from reconcile.tenancy.models import Role


@member_required(Role.OWNER)
def connect_knowbe4(request):
    form = ConnectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        url = graphql_url(data["region"])
        adapter = PartnerAdapter(base_url=url, credential=data["api_key"])
        try:
            check = adapter.test()
        except ExternalAPIError as error:
            form.add_error(None, str(error))
        else:
            connection = services.connect(
                request.organization,
                request.user,
                kind=adapter.kind,
                region=data["region"],
                base_url=url,
                credential=data["api_key"],
                description=data["description"],
                expires_on=data["expires_on"],
                api_schema=check.api_schema,
            )
            request_sync(connection, trigger="connect", actor=request.user)
            messages.success(request, f"{check.message} Importing them now.")
            return redirect("integrations:detail", connection.pk)
    return render(request, "integrations/knowbe4_connect.html", {"form": form})


@member_required()
def detail(request, connection_id):
    connection = get_for_org(VendorConnection, request, pk=connection_id)
    return render(
        request,
        "integrations/detail.html",
        {
            "connection": connection,
            "region": (
                site_label(connection.base_url)
                if connection.kind == "knowbe4_reporting"
                else region_label(connection.base_url)
            ),
            "account": connection.accounts.filter(missing_since=None).first(),
            "account_count": connection.accounts.filter(missing_since=None).count(),
            "services": connection.services.annotate(
                account_count=Count("usage__account", distinct=True)
            ),
            "runs": connection.sync_runs.all()[:10],
        },
    )


@member_required()
def accounts(request, connection_id):
    connection = get_for_org(VendorConnection, request, pk=connection_id)
    rows = VendorAccount.objects.filter(connection=connection, missing_since=None)
    query = request.GET.get("q", "").strip()[:100]
    status = request.GET.get("status", "")
    if query:
        rows = rows.filter(
            Q(name__icontains=query) | Q(domain__icontains=query) | Q(external_id=query)
        )
    if status in VendorAccount.Status.values:
        rows = rows.filter(status=status)
    page = Paginator(rows.order_by("name", "id"), 50).get_page(request.GET.get("page"))
    context = {"connection": connection, "page": page, "query": query, "status": status}
    if request.htmx and request.htmx.target == "account-results":
        return render(request, "integrations/accounts.html#results", context)
    return render(request, "integrations/accounts.html", context)


@member_required(Role.OWNER)
def rotate_key(request, connection_id):
    connection = get_for_org(
        VendorConnection.objects.exclude(kind="csv_upload"),
        request,
        pk=connection_id,
    )
    form = RotateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        adapter = connection.provider.adapter_class(
            base_url=connection.base_url, credential=form.cleaned_data["api_key"]
        )
        try:
            check = adapter.test()
        except ExternalAPIError as error:
            form.add_error("api_key", str(error))
        else:
            services.rotate_credential(
                connection,
                request.user,
                form.cleaned_data["api_key"],
                form.cleaned_data["expires_on"],
                check.api_schema,
            )
            messages.success(
                request, f"The new key works and replaced the old one. {check.message}"
            )
            return redirect("integrations:detail", connection.pk)
    return render(request, "integrations/rotate.html", {"connection": connection, "form": form})


@member_required(Role.OWNER)
def disconnect(request, connection_id):
    connection = get_for_org(VendorConnection, request, pk=connection_id)
    form = DeleteConnectionForm(request.POST or None, connection=connection)
    if request.method == "POST" and form.is_valid():
        services.disconnect(connection, request.user)
        messages.success(request, f"{connection} was deleted with everything imported through it.")
        return redirect("integrations")
    return render(
        request,
        "integrations/disconnect.html",
        {
            "connection": connection,
            "form": form,
            "account_count": connection.accounts.count(),
        },
    )
