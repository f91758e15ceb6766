from django.db.models import Count, Q
from django.shortcuts import render

from integrations.models import VendorConnection
from psa.models import PSAConnection
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
            "psa_kinds": PSAConnection.Kind.choices,
        },
    )
