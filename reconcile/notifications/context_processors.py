from django.utils.functional import SimpleLazyObject

from reconcile.notifications.services import unread


def unread_notifications(request):
    """The bell's unread count: one query, only when a page shows it."""
    membership = getattr(request, "membership", None)
    if not membership:
        return {}
    organization_id = membership.organization_id
    return {
        "unread_notifications": SimpleLazyObject(
            lambda: unread(request.user, organization_id).count()
        )
    }
