"""The helper every view starts from: who is asking, in which organization, with which role.

`@member_required(...)` resolves the current membership (or sends the user to sign in / create
an organization) and refuses a role that may not act with 403. Views then load objects with
`get_for_org(Model, request, pk=...)`, which filters by the current organization so that an id
from another tenant is a 404, never their data.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.http import urlencode


def member_required(*roles: str):
    """Allow members of the current organization; with `roles`, only those roles (and owners)."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = request.membership
            if not membership:
                return redirect("tenancy:no_organization")
            step = second_factor_step(request)
            if step:
                return redirect(f"{reverse(step)}?{urlencode({'next': request.get_full_path()})}")
            if roles and not membership.has_role(*roles):
                raise PermissionDenied("Your role does not allow this.")
            request.organization = membership.organization
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def second_factor_step(request) -> str | None:
    """Where a signed-in member must go before any organization page: the code of their
    authenticator app, or setting one up when the organization requires it."""
    if request.user.is_verified():
        return None
    if request.membership.has_confirmed_device:  # an authenticator app (TOTP, the only kind)
        return "tenancy:two_factor_verify"
    if request.membership.organization.require_two_factor:
        return "tenancy:two_factor"
    return None


def get_for_org(model_or_queryset, request, **lookup):
    """Fetch one object of the current organization, or 404."""
    queryset = getattr(model_or_queryset, "objects", model_or_queryset)
    return get_object_or_404(queryset, organization=request.organization, **lookup)
