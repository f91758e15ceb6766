from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from integrations.models import VendorConnection
from reconcile.sync.models import SyncRun
from reconcile.sync.services import queue_sync
from reconcile.tenancy.access import get_for_org, member_required
from reconcile.tenancy.models import Role


def status_context(connection: VendorConnection) -> dict:
    return {
        "connection": connection,
        "run": connection.sync_runs.first(),
        "account_count": connection.accounts.filter(missing_since=None).count(),
    }


@member_required()
def connection_status(request, connection_id):
    """The status block of one connection (htmx partial; polled while a run is active)."""
    connection = get_for_org(VendorConnection, request, pk=connection_id)
    context = status_context(connection)
    # Polled while a run was active and now it is over: light the page's Refresh.
    context["just_finished"] = bool(request.GET.get("was_active")) and not (
        context["run"] and context["run"].is_active
    )
    return render(request, "sync/_connection_status.html", context)


@require_POST
@member_required(Role.OWNER)
def sync_now(request, connection_id):
    connection = get_for_org(VendorConnection, request, pk=connection_id)
    run = queue_sync(connection, trigger=SyncRun.Trigger.MANUAL, actor=request.user)
    if request.htmx:
        return render(request, "sync/_connection_status.html", status_context(connection))
    if run.trigger == SyncRun.Trigger.MANUAL and run.requested_by_id == request.user.pk:
        messages.success(request, "Sync queued.")
    return redirect("integrations:detail", connection.pk)


@member_required()
def run_detail(request, run_id):
    run = get_for_org(SyncRun.objects.select_related("vendor_connection"), request, pk=run_id)
    return render(request, "sync/run_detail.html", {"run": run})
