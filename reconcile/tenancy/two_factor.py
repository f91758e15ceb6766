"""Two-factor sign-in with a TOTP authenticator app (django-otp).

A member who set up a device is asked for a code after the password (`verify`); until then
every organization page sends them there. An owner can require two-factor for the whole
organization: members without a device are sent to `setup` first.
"""

import base64

import segno
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from reconcile.tenancy import audit
from reconcile.tenancy.access import member_required
from reconcile.tenancy.models import Role


class TokenForm(forms.Form):
    token = forms.RegexField(
        regex=r"^\s*\d{6}\s*$",
        label="6-digit code from your authenticator app",
        error_messages={"invalid": "Enter the 6 digits your authenticator app shows."},
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def __init__(self, *args, device=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.device = device

    def clean_token(self):
        token = self.cleaned_data["token"].strip()
        if self.device is None or not self.device.verify_token(token):
            raise forms.ValidationError("That code is wrong or expired; try the current one.")
        return token


def confirmed_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def qr_svg(url: str) -> str:
    return segno.make(url, error="m").svg_inline(scale=4, dark="#111827")


@login_required
def setup(request):
    """Set up (or turn off) the authenticator app of the signed-in user."""
    device = confirmed_device(request.user)
    if device:
        return render(request, "tenancy/two_factor.html", {"device": device})
    pending, _ = TOTPDevice.objects.get_or_create(
        user=request.user, confirmed=False, defaults={"name": "Authenticator app"}
    )
    form = TokenForm(request.POST or None, device=pending)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            pending.confirmed = True
            pending.save(update_fields=["confirmed"])
            membership = request.membership
            audit.record(
                membership.organization if membership else None,
                request.user,
                "security.two_factor_enabled",
                request.user,
            )
        otp_login(request, pending)
        messages.success(
            request, "Two-factor sign-in is on: TrueUp asks for a code after your password."
        )
        return redirect("tenancy:two_factor")
    return render(
        request,
        "tenancy/two_factor.html",
        {
            "form": form,
            "qr": qr_svg(pending.config_url),
            "secret": _base32(pending.bin_key),
            "required": bool(
                request.membership and request.membership.organization.require_two_factor
            ),
        },
    )


def _base32(key: bytes) -> str:
    text = base64.b32encode(key).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


@require_POST
@login_required
def disable(request):
    device = confirmed_device(request.user)
    membership = request.membership
    if membership and membership.organization.require_two_factor:
        messages.error(request, "Your organization requires two-factor sign-in; it stays on.")
        return redirect("tenancy:two_factor")
    form = TokenForm(request.POST, device=device)
    if not form.is_valid():
        messages.error(request, form.errors["token"][0])
        return redirect("tenancy:two_factor")
    with transaction.atomic():
        TOTPDevice.objects.filter(user=request.user).delete()
        audit.record(
            membership.organization if membership else None,
            request.user,
            "security.two_factor_disabled",
            request.user,
        )
    messages.success(request, "Two-factor sign-in is off.")
    return redirect("tenancy:two_factor")


@login_required
def verify(request):
    """The second step of signing in."""
    device = confirmed_device(request.user)
    next_url = request.GET.get("next") or request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
        next_url = ""
    if device is None or request.user.is_verified():
        return redirect(next_url or "home")
    form = TokenForm(request.POST or None, device=device)
    if request.method == "POST" and form.is_valid():
        otp_login(request, device)
        return redirect(next_url or "home")
    return render(request, "tenancy/two_factor_verify.html", {"form": form, "next": next_url})


@require_POST
@member_required(Role.OWNER)
def require_for_organization(request):
    """Owners turn "require two-factor" on or off; only with their own second factor on."""
    organization = request.organization
    wanted = request.POST.get("require") == "1"
    if wanted and not confirmed_device(request.user):
        messages.error(request, "Set up your own authenticator app first, then require it.")
        return redirect("tenancy:two_factor")
    with transaction.atomic():
        before = organization.require_two_factor
        organization.require_two_factor = wanted
        organization.save(update_fields=["require_two_factor"])
        audit.record(
            organization,
            request.user,
            "organization.two_factor_required" if wanted else "organization.two_factor_optional",
            organization,
            before={"require_two_factor": before},
            after={"require_two_factor": wanted},
        )
    messages.success(
        request,
        "Every member now signs in with a second factor."
        if wanted
        else "Two-factor sign-in is now each member's choice.",
    )
    return redirect("tenancy:two_factor")
