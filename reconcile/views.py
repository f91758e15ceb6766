from django.db.models import Count, Q, Sum
from django.shortcuts import render

from integrations.models import VendorAccount, VendorConnection
from psa.models import PSAConnection
from reconcile.tenancy.access import member_required


@member_required()
def home(request):
    """Landing page: what is connected, how many customers and users, and what to do next."""
    organization = request.organization
    connections = VendorConnection.objects.filter(organization=organization).annotate(
        account_count=Count("accounts", filter=Q(accounts__missing_since=None))
    )
    totals = VendorAccount.objects.filter(
        organization=organization, missing_since=None, status=VendorAccount.Status.ACTIVE
    ).aggregate(accounts=Count("id"), users=Sum("active_users"), seats=Sum("seats_purchased"))
    return render(request, "home.html", {"connections": connections, "totals": totals})


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
