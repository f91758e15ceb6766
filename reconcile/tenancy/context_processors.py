from reconcile.tenancy.models import Membership, Role


def organization(request):
    membership = getattr(request, "membership", None)
    if not membership:
        return {}
    return {
        "current_membership": membership,
        "current_organization": membership.organization,
        "is_owner": membership.role == Role.OWNER,
        "other_memberships": Membership.objects.filter(user=request.user)
        .exclude(pk=membership.pk)
        .select_related("organization"),
    }
