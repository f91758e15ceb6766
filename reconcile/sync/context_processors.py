from django.db.models import Exists
from django.urls import reverse
from django.utils.functional import SimpleLazyObject

from integrations.models import VendorConnection
from psa.models import PSAConnection
from reconcile.tenancy.models import Organization


def quarantined(request):
    """Quarantined connections of the current organization, for the banner on every page."""
    membership = getattr(request, "membership", None)
    if not membership:
        return {}

    def find():
        kinds = (
            (VendorConnection, "integrations:detail"),
            (PSAConnection, "psa:detail"),
        )
        quarantined = [
            model.objects.filter(
                organization_id=membership.organization_id, quarantined_at__isnull=False
            )
            for model, _ in kinds
        ]
        # Almost never any: one query asks both tables, the connections are read only if so.
        if not Organization.objects.filter(
            Exists(quarantined[0]) | Exists(quarantined[1]), pk=membership.organization_id
        ).exists():
            return []
        return [
            (connection, reverse(url, args=[connection.pk]))
            for (_, url), connections in zip(kinds, quarantined, strict=True)
            for connection in connections
        ]

    return {"quarantined_connections": SimpleLazyObject(find)}
