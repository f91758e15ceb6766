from django.urls import reverse
from django.utils.functional import SimpleLazyObject

from integrations.models import VendorConnection
from psa.models import PSAConnection


def quarantined(request):
    """Quarantined connections of the current organization, for the banner on every page."""
    membership = getattr(request, "membership", None)
    if not membership:
        return {}

    def find():
        found = []
        for model, url in (
            (VendorConnection, "integrations:detail"),
            (PSAConnection, "psa:detail"),
        ):
            for connection in model.objects.filter(
                organization_id=membership.organization_id, quarantined_at__isnull=False
            ):
                found.append((connection, reverse(url, args=[connection.pk])))
        return found

    return {"quarantined_connections": SimpleLazyObject(find)}
