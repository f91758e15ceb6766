from django.utils.functional import SimpleLazyObject

from reconcile.tenancy.models import Membership

SESSION_KEY = "organization_id"


def current_membership(request) -> Membership | None:
    """The signed-in user's membership in the organization chosen in the session."""
    if not request.user.is_authenticated:
        return None
    memberships = Membership.objects.select_related("organization").filter(user=request.user)
    chosen = request.session.get(SESSION_KEY)
    membership = (memberships.filter(organization_id=chosen).first() if chosen else None) or (
        memberships.order_by("created_at").first()
    )
    if membership and chosen != membership.organization_id:
        request.session[SESSION_KEY] = membership.organization_id
    return membership


class CurrentOrganizationMiddleware:
    """Sets `request.membership` (lazily); views reach the organization only through it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.membership = SimpleLazyObject(lambda: current_membership(request))
        return self.get_response(request)
