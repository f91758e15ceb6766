from django.db.models import Exists, OuterRef
from django.utils.functional import SimpleLazyObject
from django_otp.plugins.otp_totp.models import TOTPDevice

from reconcile.tenancy.models import Membership

SESSION_KEY = "organization_id"


def user_memberships(request) -> list[Membership]:
    """The signed-in user's memberships with their organizations, oldest first: one query a
    request, shared by the current membership and the organization switcher."""
    if not hasattr(request, "_memberships"):
        request._memberships = (
            list(
                Membership.objects.select_related("organization")
                .filter(user=request.user)
                # Read with it rather than asked apart on every page (access.second_factor_step).
                .annotate(
                    has_confirmed_device=Exists(
                        TOTPDevice.objects.filter(user=OuterRef("user"), confirmed=True)
                    )
                )
                .order_by("created_at", "id")
            )
            if request.user.is_authenticated
            else []
        )
    return request._memberships


def current_membership(request) -> Membership | None:
    """The signed-in user's membership in the organization chosen in the session."""
    memberships = user_memberships(request)
    chosen = request.session.get(SESSION_KEY) if memberships else None
    membership = next((m for m in memberships if m.organization_id == chosen), None) or (
        memberships[0] if memberships else None
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
