from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from integrations.models import VendorConnection
from psa.models import PSAConnection
from reconcile.core.connections import PollingInterval
from reconcile.core.errors import ExternalAPIError
from reconcile.forms import DeleteConnectionForm
from reconcile.sync import services
from reconcile.sync.models import SyncRun
from reconcile.sync.services import CONNECTION_MODELS, queue_sync
from reconcile.tenancy import audit
from reconcile.tenancy.access import get_for_org, member_required
from reconcile.tenancy.models import Role


def _connection(request, kind: str, connection_id: int):
    if kind not in CONNECTION_MODELS:
        raise Http404
    return get_for_org(CONNECTION_MODELS[kind], request, pk=connection_id)


def detail_url(connection) -> str:
    return connection.get_absolute_url()


def status_context(connection) -> dict:
    """What the status block of a vendor or PSA connection shows."""
    count, noun, extra = connection.imported_counts()
    return {
        "connection": connection,
        "kind": connection.side,
        "run": connection.sync_runs.first(),
        "count": count,
        "noun": noun,
        "extra": extra,
        "next_run": services.next_scheduled_run(connection),
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
    refusal = services.manual_sync_refusal(connection)
    if not refusal:
        queue_sync(connection, trigger=SyncRun.Trigger.MANUAL, actor=request.user)
    if request.htmx:
        return render(
            request,
            "sync/_connection_status.html",
            status_context(connection) | {"refusal": refusal},
        )
    if refusal:
        messages.error(request, refusal)
    else:
        messages.success(request, "Sync queued.")
    return redirect(detail_url(connection))


def _all_connections(organization):
    return [
        *VendorConnection.objects.filter(organization=organization),
        *PSAConnection.objects.filter(organization=organization),
    ]


@member_required()
def status_page(request):
    """Every connection: state, last success and error, next run, progress, run history."""
    rows = [status_context(connection) for connection in _all_connections(request.organization)]
    runs = SyncRun.objects.filter(organization=request.organization).select_related(
        "vendor_connection", "psa_connection"
    )[:30]
    return render(request, "sync/status.html", {"rows": rows, "runs": runs})


@require_POST
@member_required(Role.OWNER)
def sync_all(request):
    started, waiting = 0, []
    for connection in _all_connections(request.organization):
        if connection.state == connection.State.DISABLED:
            continue
        refusal = services.manual_sync_refusal(connection)
        if refusal:
            waiting.append(f"{connection}: {refusal}")
        else:
            queue_sync(connection, trigger=SyncRun.Trigger.MANUAL, actor=request.user)
            started += 1
    report = messages.success if started else messages.info
    report(request, f"{started} sync{'s' if started != 1 else ''} started.")
    for line in waiting:
        messages.warning(request, line)
    return redirect("sync:status")


@require_POST
@member_required(Role.OWNER)
def set_schedule(request, kind, connection_id):
    connection = _connection(request, kind, connection_id)
    try:
        interval = int(request.POST.get("polling_interval", ""))
        minimum = int(request.POST.get("min_manual_interval", connection.min_manual_interval))
    except ValueError:
        interval = minimum = -1
    if interval not in PollingInterval.values or not 0 <= minimum <= 1440:
        messages.error(
            request,
            "Choose one of the listed intervals, and a minimum between 0 "
            "and 1,440 minutes between manual syncs.",
        )
        return redirect(detail_url(connection))
    with transaction.atomic():
        before = {
            "polling_interval": connection.polling_interval,
            "min_manual_interval": connection.min_manual_interval,
        }
        connection.polling_interval, connection.min_manual_interval = interval, minimum
        connection.save(update_fields=["polling_interval", "min_manual_interval"])
        services.apply_schedule(connection)
        audit.record(
            connection.organization,
            request.user,
            "sync.schedule_changed",
            connection,
            before=before,
            after={"polling_interval": interval, "min_manual_interval": minimum},
        )
    messages.success(request, f"Schedule saved: {PollingInterval(interval).label.lower()}.")
    return redirect(detail_url(connection))


@member_required()
def run_detail(request, run_id):
    run = get_for_org(
        SyncRun.objects.select_related("vendor_connection", "psa_connection"), request, pk=run_id
    )
    return render(
        request, "sync/run_detail.html", {"run": run, "connection_url": detail_url(run.connection)}
    )


@require_POST
@member_required(Role.BILLING)
def test_connection(request, kind, connection_id):
    """Test connection: the cheapest authenticated call, answered in plain words."""
    connection = _connection(request, kind, connection_id)
    worked, message = services.test_connection(connection)
    if request.htmx:
        return render(
            request,
            "sync/_test_result.html",
            {"worked": worked, "message": message},
            status=200 if worked else 422,
        )
    (messages.success if worked else messages.error)(request, message)
    return redirect(detail_url(connection))


@require_POST
@member_required(Role.OWNER)
def deactivate(request, kind, connection_id):
    connection = _connection(request, kind, connection_id)
    services.deactivate(connection, request.user)
    messages.success(
        request,
        f"{connection} is deactivated: no scheduled syncs and no pushes. Its data and "
        "mappings are kept.",
    )
    return redirect(detail_url(connection))


@require_POST
@member_required(Role.OWNER)
def activate(request, kind, connection_id):
    connection = _connection(request, kind, connection_id)
    worked, message = services.activate(connection, request.user)
    if worked:
        messages.success(request, f"{connection} is active again. {message}")
    else:
        messages.error(request, f"Still deactivated: the test failed. {message}")
    return redirect(detail_url(connection))


@require_POST
@member_required(Role.OWNER)
def resume(request, kind, connection_id):
    connection = _connection(request, kind, connection_id)
    worked, message = services.resume(connection, request.user)
    if worked:
        messages.success(request, f"{connection} resumed; its schedule runs again. {message}")
    else:
        messages.error(request, f"Still quarantined: the test failed. {message}")
    return redirect(detail_url(connection))


@member_required(Role.OWNER)
def rotate(request, kind, connection_id):
    """Replace a connection's credentials: the new ones are tested first, the old ones stay in
    use until they work. The form is the provider's (its connect form unless it has one)."""
    connection = _connection(request, kind, connection_id)
    provider = connection.provider
    if not provider.has_credential:
        raise Http404("This connection has no credentials.")
    form = provider.rotate_form_class(
        request.POST or None, initial=connection.settings | {"description": connection.description}
    )
    if request.method == "POST" and form.is_valid():
        settings = connection.settings | form.settings()
        adapter = provider.adapter_class.for_store(settings, form.secrets())
        try:
            check = adapter.test()
        except ExternalAPIError as error:
            form.add_error(None, str(error))
        else:
            services.rotate_credentials(
                connection,
                request.user,
                secrets=form.secrets(),
                settings=form.settings() | check.settings,
                expires_on=form.cleaned_data.get("expires_on"),
            )
            messages.success(
                request, f"The new {provider.credential_noun} replaced the old. {check.message}"
            )
            return redirect(detail_url(connection))
        finally:
            adapter.close()
    return render(
        request,
        "sync/rotate.html",
        {"connection": connection, "form": form, "noun": provider.credential_noun},
    )


@member_required(Role.OWNER)
def delete(request, kind, connection_id):
    """Delete a connection and what was imported through it, confirmed by its typed name."""
    connection = _connection(request, kind, connection_id)
    form = DeleteConnectionForm(request.POST or None, connection=connection)
    if request.method == "POST" and form.is_valid():
        services.delete_connection(connection, request.user)
        messages.success(request, f"{connection} was deleted with everything imported through it.")
        return redirect("integrations")
    return render(
        request,
        "sync/delete.html",
        {"connection": connection, "form": form, "contents": connection.contents()},
    )
