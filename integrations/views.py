from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.shortcuts import redirect, render

from integrations.models import VendorAccount, VendorConnection
from integrations.providers.knowbe4_partner.adapter import PartnerAdapter
from integrations.providers.knowbe4_partner.client import region_label
from integrations.providers.knowbe4_partner.forms import ConnectForm
from integrations.providers.knowbe4_reporting.adapter import site_label
from reconcile.core.errors import ExternalAPIError
from reconcile.core.signals import request_sync
from reconcile.sync import services as lifecycle
from reconcile.tenancy.access import get_for_org, member_required
from reconcile.tenancy.models import Role


@member_required(Role.OWNER)
def connect_knowbe4(request):
    form = ConnectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        adapter = PartnerAdapter.for_store(form.settings(), form.secrets())
        try:
            check = adapter.test()
        except ExternalAPIError as error:
            form.add_error(None, str(error))
        else:
            connection = lifecycle.connect(
                VendorConnection,
                request.organization,
                request.user,
                kind=adapter.kind,
                settings=form.settings() | check.settings,
                secrets=form.secrets(),
                description=form.cleaned_data["description"],
                expires_on=form.cleaned_data["expires_on"],
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
