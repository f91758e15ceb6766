"""Writing the audit trail. Call `record()` inside the transaction that makes the change."""

from django.db import models, transaction

from reconcile.tenancy.models import AuditEvent, Organization


def record(
    organization: Organization,
    actor,
    action: str,
    obj: models.Model | None = None,
    *,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit.record() must run in the transaction that makes the change")
    return AuditEvent.objects.create(
        organization=organization,
        actor=actor if actor and actor.is_authenticated else None,
        actor_email=getattr(actor, "email", "") or "",
        action=action,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        before=before,
        after=after,
    )
