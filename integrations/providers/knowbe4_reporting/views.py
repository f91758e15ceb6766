"""KnowBe4 Reporting API pages: connect one customer account's key, and its user exclusions."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from integrations import services
from integrations.models import UserExclusion, VendorAccount, VendorConnection
from integrations.providers.knowbe4_reporting.adapter import ReportingAdapter, site_label
from integrations.providers.knowbe4_reporting.forms import ExclusionForm, ReportingConnectForm
from reconcile.core.errors import ExternalAPIError
from reconcile.core.signals import request_sync
from reconcile.sync import services as lifecycle
from reconcile.tenancy.access import get_for_org, member_required
from reconcile.tenancy.models import Role

REPORTING = "knowbe4_reporting"


@member_required(Role.OWNER)
def connect_reporting(request):
    """Test the key with KnowBe4 first; only a working key is saved, then synced."""
    form = ReportingConnectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        twin = _same_key(request.organization, data["api_key"])
        if twin is not None:
            form.add_error("api_key", f"This key is already connected as {twin}.")
        else:
            adapter = ReportingAdapter.for_store(form.settings(), form.secrets())
            try:
                check = adapter.test()
            except ExternalAPIError as error:
                form.add_error(None, str(error))
            else:
                connection = lifecycle.connect(
                    VendorConnection,
                    request.organization,
                    request.user,
                    kind=REPORTING,
                    settings=form.settings(),
                    secrets=form.secrets(),
                    account_name=data["account_name"] or adapter.checked_name,
                    description=data["description"],
                    polling_interval=data["polling_interval"],
                )
                request_sync(connection, trigger="connect", actor=request.user)
                messages.success(request, f"{check.message} Counting its active users now.")
                return redirect("integrations:detail", connection.pk)
    return render(request, "integrations/reporting_connect.html", {"form": form})


def _same_key(organization, key: str) -> VendorConnection | None:
    for connection in VendorConnection.objects.filter(
        organization=organization, kind=REPORTING, secret_hint=key[-4:]
    ):
        if connection.credential() == key:
            return connection
    return None


def _account(request, account_id) -> VendorAccount:
    """An account of the organization whose connection sees single users (else 404)."""
    account = get_for_org(
        VendorAccount.objects.select_related("connection"), request, pk=account_id
    )
    if account.connection.kind != REPORTING:
        raise Http404("Exclusions by e-mail need a connection that sees single users.")
    return account


def _exclusions_page(request, account, form, note=""):
    connection = account.connection
    matched = (account.raw or {}).get("excluded_by_pattern") or {}
    synced_at = connection.last_success_at
    rows = [
        {
            "exclusion": exclusion,
            # None: added after the last successful sync, so not applied yet.
            "matched": matched.get(exclusion.pattern, 0)
            if synced_at and exclusion.created_at <= synced_at
            else None,
        }
        for exclusion in account.exclusions.select_related("created_by")
    ]
    excluded = account.excluded_users
    context = {
        "account": account,
        "connection": connection,
        "site": site_label(connection.base_url),
        "rows": rows,
        "raw_users": None
        if account.active_users is None
        else account.active_users + (excluded or 0),
        "form": form,
        "note": note,
    }
    if request.htmx:
        return render(request, "integrations/reporting_exclusions.html#exclusions", context)
    return render(request, "integrations/reporting_exclusions.html", context)


@member_required()
def exclusions(request, account_id):
    """The account's exclusion patterns, its raw / excluded / billable users at the last sync."""
    account = _account(request, account_id)
    return _exclusions_page(request, account, ExclusionForm(account=account))


@require_POST
@member_required(Role.OWNER)
def add_exclusion(request, account_id):
    account = _account(request, account_id)
    form = ExclusionForm(request.POST, account=account)
    if not form.is_valid():
        return _exclusions_page(request, account, form)
    services.add_exclusion(account, request.user, form.cleaned_data["pattern"])
    note = f"Users matching {form.cleaned_data['pattern']} no longer count from the next sync."
    if request.htmx:
        return _exclusions_page(request, account, ExclusionForm(account=account), note)
    messages.success(request, note)
    return redirect("integrations:reporting_exclusions", account.pk)


@require_POST
@member_required(Role.OWNER)
def delete_exclusion(request, account_id, exclusion_id):
    account = _account(request, account_id)
    exclusion = get_for_org(UserExclusion.objects.filter(account=account), request, pk=exclusion_id)
    services.remove_exclusion(exclusion, request.user)
    note = f"Users matching {exclusion.pattern} count again from the next sync."
    if request.htmx:
        return _exclusions_page(request, account, ExclusionForm(account=account), note)
    messages.success(request, note)
    return redirect("integrations:reporting_exclusions", account.pk)
