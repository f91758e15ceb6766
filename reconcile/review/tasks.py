"""Worker entry points of the review app (django-q2)."""

from reconcile.review import push, services
from reconcile.tenancy.models import Organization


def push_batch(batch_id: int) -> str:
    batch = push.run_batch(batch_id)
    return batch.state if batch else "not claimed"


def reconcile(organization_id: int) -> dict:
    return services.reconcile_organization(Organization.objects.get(pk=organization_id))
