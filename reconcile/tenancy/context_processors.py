from reconcile.tenancy.middleware import user_memberships
from reconcile.tenancy.models import Role


def organization(request):
    membership = getattr(request, "membership", None)
    if not membership:
        return {}
    return {
        "current_membership": membership,
        "current_organization": membership.organization,
        "is_owner": membership.role == Role.OWNER,
        "other_memberships": [m for m in user_memberships(request) if m.pk != membership.pk],
    }
