from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from integrations.models import VendorConnection
from psa.models import BillingLine, PSACompany, PSAConnection
from reconcile.sync.models import SyncRun
from reconcile.sync.services import queue_sync
from reconcile.tenancy.access import get_for_org, member_required
from reconcile.tenancy.models import Role

CONNECTION_MODELS = {"vendor": VendorConnection, "psa": PSAConnection}


def _connection(request, kind: str, connection_id: int):
    if kind not in CONNECTION_MODELS:
        raise Http404
    return get_for_org(CONNECTION_MODELS[kind], request, pk=connection_id)


def detail_url(connection) -> str:
    if isinstance(connection, PSAConnection):
        return reverse("psa:detail", args=[connection.pk])
    return reverse("integrations:detail", args=[connection.pk])


def status_context(connection) -> dict:
    """What the status block of a vendor or PSA connection shows."""
    if isinstance(connection, PSAConnection):
        live = {"connection": connection, "missing_since": None}
        count, noun = BillingLine.objects.filter(**live).count(), "billing line"
        extra = f"{PSACompany.objects.filter(**live).count()} companies · "
        kind = "psa"
    else:
        count, noun = connection.accounts.filter(missing_since=None).count(), "customer account"
        extra, kind = "", "vendor"
    return {
        "connection": connection,
        "kind": kind,
        "run": connection.sync_runs.first(),
        "count": count,
        "noun": noun,
        "extra": extra,
    }


@member_required()
def connection_status(request, kind, connection_id):
    """The status block of one connection (htmx partial; polled while a run is active)."""
    context = status_context(_connection(request, kind, connection_id))
    # Polled while a run was active and now it is over: light the page's Refresh.
    context["just_finished"] = bool(request.GET.get("was_active")) and not (
        context["run"] and context["run"].is_active
    )
    return render(request, "sync/_connection_status.html", context)


@require_POST
@member_required(Role.OWNER)
def sync_now(request, kind, connection_id):
    connection = _connection(request, kind, connection_id)
    run = queue_sync(connection, trigger=SyncRun.Trigger.MANUAL, actor=request.user)
    if request.htmx:
        return render(request, "sync/_connection_status.html", status_context(connection))
    if run.requested_by_id == request.user.pk:
        messages.success(request, "Sync queued.")
    return redirect(detail_url(connection))


@member_required()
def run_detail(request, run_id):
    run = get_for_org(
        SyncRun.objects.select_related("vendor_connection", "psa_connection"), request, pk=run_id
    )
    return render(
        request, "sync/run_detail.html", {"run": run, "connection_url": detail_url(run.connection)}
    )
