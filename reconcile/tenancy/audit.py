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


def record_each(
    organization: Organization, actor, action: str, changes: list[tuple[models.Model, dict, dict]]
) -> int:
    """One audit event per (object, before, after), written in one statement (bulk actions)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit.record_each() must run in the transaction that makes the change")
    actor_email = getattr(actor, "email", "") or ""
    actor = actor if actor and actor.is_authenticated else None
    events = AuditEvent.objects.bulk_create(
        AuditEvent(
            organization=organization,
            actor=actor,
            actor_email=actor_email,
            action=action,
            object_type=obj._meta.model_name,
            object_id=str(obj.pk),
            object_repr=str(obj)[:200],
            before=before,
            after=after,
        )
        for obj, before, after in changes
    )
    return len(events)
