from django.db import DatabaseError
from django.db import connection as db_connection
from django.db.models import Count, Q
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django_q.brokers import get_broker
from django_q.models import Success

from integrations.models import VendorConnection
from psa.models import PSAConnection
from psa.providers import PROVIDERS as PSA_PROVIDERS
from reconcile.review import dashboard
from reconcile.tenancy.access import member_required


@member_required()
def home(request):
    """The finance dashboard: under- and over-billed seats and money, unmapped accounts, the
    health of every connection, and billed against used seats over twelve months."""
    organization = request.organization
    series = dashboard.monthly_series(organization)
    return render(
        request,
        "home.html",
        {
            "totals": dashboard.totals(organization),
            "unmapped": dashboard.unmapped_count(organization),
            "health": dashboard.sync_health(organization),
            "chart": dashboard.chart(series),
            "history_months": dashboard.months_with_data(series),
        },
    )


@member_required()
def integrations(request):
    """Every connection of the organization, vendor and PSA side, and the cards to add more."""
    return render(
        request,
        "integrations.html",
        {
            "connections": VendorConnection.objects.filter(
                organization=request.organization
            ).annotate(account_count=Count("accounts", filter=Q(accounts__missing_since=None))),
            "psa_connections": PSAConnection.objects.filter(organization=request.organization),
            "psa_kinds": PSA_PROVIDERS.choices(),
        },
    )


HEARTBEAT_STALE_AFTER = 300  # seconds: the heartbeat runs every minute


@never_cache
def healthz(request):
    """For load balancers and monitoring: the database, the worker's last heartbeat, the queue.

    503 when the database is unreachable; with `?strict=1` also when the worker's heartbeat
    is older than five minutes (or never came).
    """
    body = {"database": "ok", "worker_heartbeat_age_s": None, "queued_tasks": None}
    try:
        with db_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        last = (
            Success.objects.filter(func="reconcile.sync.tasks.heartbeat")
            .order_by("-stopped")
            .values_list("stopped", flat=True)
            .first()
        )
        body["queued_tasks"] = get_broker().queue_size()
    except DatabaseError as error:
        body["database"] = f"unreachable ({type(error).__name__})"
        return JsonResponse(body | {"status": "down"}, status=503)
    if last:
        body["worker_heartbeat_age_s"] = round((timezone.now() - last).total_seconds())
    worker_ok = last is not None and body["worker_heartbeat_age_s"] <= HEARTBEAT_STALE_AFTER
    body["status"] = "ok" if worker_ok else "worker stale"
    strict = request.GET.get("strict") == "1"
    return JsonResponse(body, status=503 if strict and not worker_ok else 200)
