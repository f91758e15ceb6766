from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login, logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from reconcile.tenancy import services
from reconcile.tenancy.access import get_for_org, member_required
from reconcile.tenancy.forms import (
    AcceptInvitationForm,
    ActivityFilterForm,
    InviteForm,
    OrganizationForm,
    RoleForm,
    SignupForm,
)
from reconcile.tenancy.middleware import SESSION_KEY
from reconcile.tenancy.models import ROLE_HELP, AuditEvent, Invitation, Membership, Role

User = get_user_model()


def signup(request):
    if not settings.TRUEUP_OPEN_SIGNUP:
        return render(request, "tenancy/signup_closed.html", status=403)
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        user, organization = services.sign_up(
            data["email"], data["password1"], data["organization_name"]
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        request.session[SESSION_KEY] = organization.pk
        messages.success(request, f"Welcome! {organization.name} is ready: connect KnowBe4 next.")
        return redirect("integrations")
    return render(request, "tenancy/signup.html", {"form": form})


@login_required
def no_organization(request):
    """A signed-in user who belongs to no organization (removed, or never invited)."""
    if request.membership:
        return redirect("home")
    form = OrganizationForm(request.POST or None) if settings.TRUEUP_OPEN_SIGNUP else None
    if form and request.method == "POST" and form.is_valid():
        organization = services.create_organization(
            form.cleaned_data["name"], request.user, form.cleaned_data["currency"]
        )
        request.session[SESSION_KEY] = organization.pk
        return redirect("integrations")
    return render(request, "tenancy/no_organization.html", {"form": form})


@require_POST
@login_required
def switch_organization(request, organization_id):
    membership = get_object_or_404(Membership, user=request.user, organization_id=organization_id)
    request.session[SESSION_KEY] = membership.organization_id
    return redirect("home")


@member_required()
def organization_settings(request):
    is_owner = request.membership.role == Role.OWNER
    form = OrganizationForm(
        request.POST or None,
        initial={"name": request.organization.name, "currency": request.organization.currency},
    )
    if request.method == "POST":
        if not is_owner:
            raise PermissionDenied("Only owners change organization settings.")
        if form.is_valid():
            services.update_organization(request.organization, request.user, **form.cleaned_data)
            messages.success(request, "Organization settings saved.")
            return redirect("tenancy:settings")
    return render(request, "tenancy/settings.html", {"form": form, "is_owner": is_owner})


@member_required()
def members(request):
    organization = request.organization
    is_owner = request.membership.role == Role.OWNER
    invite_form = InviteForm(request.POST or None, organization=organization)
    if request.method == "POST":
        if not is_owner:
            raise PermissionDenied("Only owners invite members.")
        if invite_form.is_valid():
            invitation = services.invite(
                organization,
                request.user,
                invite_form.cleaned_data["email"],
                invite_form.cleaned_data["role"],
                request.build_absolute_uri("/").rstrip("/"),
            )
            messages.success(request, f"Invitation sent to {invitation.email}.")
            return redirect("tenancy:members")
    return render(
        request,
        "tenancy/members.html",
        {
            "memberships": organization.memberships.select_related("user"),
            "invitations": [
                i for i in organization.invitations.filter(accepted_at=None) if i.is_open
            ],
            "invite_form": invite_form,
            "roles": [(role, label, ROLE_HELP[role]) for role, label in Role.choices],
            "is_owner": is_owner,
        },
    )


@require_POST
@member_required(Role.OWNER)
def change_role(request, membership_id):
    membership = get_for_org(Membership, request, pk=membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the listed roles.")
        return redirect("tenancy:members")
    try:
        services.change_role(membership, form.cleaned_data["role"], request.user)
        messages.success(request, f"{membership.user.email} is now {form.cleaned_data['role']}.")
    except services.LastOwnerError as error:
        messages.error(request, str(error))
    return redirect("tenancy:members")


@require_POST
@member_required(Role.OWNER)
def remove_member(request, membership_id):
    membership = get_for_org(Membership, request, pk=membership_id)
    try:
        services.remove_member(membership, request.user)
        messages.success(request, f"{membership.user.email} was removed.")
    except services.LastOwnerError as error:
        messages.error(request, str(error))
    return redirect("tenancy:members")


@require_POST
@member_required(Role.OWNER)
def revoke_invitation(request, invitation_id):
    invitation = get_for_org(Invitation, request, pk=invitation_id, accepted_at=None)
    services.revoke_invitation(invitation, request.user)
    messages.success(request, f"The invitation to {invitation.email} was revoked.")
    return redirect("tenancy:members")


def accept_invitation(request, token):
    invitation = get_object_or_404(Invitation.objects.select_related("organization"), token=token)
    context = {"invitation": invitation}
    if not invitation.is_open:
        return render(request, "tenancy/invitation.html", context | {"closed": True}, status=410)
    user = request.user
    if user.is_authenticated:
        if user.email.lower() != invitation.email.lower():
            return render(request, "tenancy/invitation.html", context | {"wrong_user": True})
        if request.method == "POST":
            services.accept_invitation(invitation, user)
            request.session[SESSION_KEY] = invitation.organization_id
            messages.success(request, f"You joined {invitation.organization.name}.")
            return redirect("home")
        return render(request, "tenancy/invitation.html", context)
    if User.objects.filter(username__iexact=invitation.email).exists():
        return render(request, "tenancy/invitation.html", context | {"sign_in_first": True})
    form = AcceptInvitationForm(request.POST or None, email=invitation.email)
    if request.method == "POST" and form.is_valid():
        user = User.objects.create_user(
            username=invitation.email,
            email=invitation.email,
            password=form.cleaned_data["password1"],
        )
        services.accept_invitation(invitation, user)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        request.session[SESSION_KEY] = invitation.organization_id
        messages.success(request, f"Welcome to {invitation.organization.name}.")
        return redirect("home")
    return render(request, "tenancy/invitation.html", context | {"form": form})


@member_required(Role.OWNER)
def activity(request):
    events = AuditEvent.objects.filter(organization=request.organization)
    form = ActivityFilterForm(request.GET or None)
    if request.GET:
        events = form.filter(events)
    facets = AuditEvent.objects.filter(organization=request.organization)
    page = Paginator(events.select_related("actor"), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "tenancy/activity.html",
        {
            "form": form,
            "page": page,
            "actions": facets.values_list("action", flat=True).distinct().order_by("action"),
            "object_types": facets.exclude(object_type="")
            .values_list("object_type", flat=True)
            .distinct()
            .order_by("object_type"),
        },
    )


def logout_view(request):
    if request.method == "POST":
        logout(request)
    return redirect("login")
