from django import forms
from django.contrib.auth import get_user_model, password_validation

from reconcile.tenancy.models import Membership, Organization, Role

User = get_user_model()


class PasswordFieldsMixin(forms.Form):
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput, strip=False)
    password2 = forms.CharField(label="Password again", widget=forms.PasswordInput, strip=False)

    def clean(self):
        cleaned = super().clean()
        p1, p2 = cleaned.get("password1"), cleaned.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", "The two passwords differ.")
        elif p1:
            email = cleaned.get("email") or getattr(self, "email", "")
            try:
                password_validation.validate_password(p1, User(username=email, email=email))
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned


class SignupForm(PasswordFieldsMixin):
    organization_name = forms.CharField(
        label="Your company (the MSP)", max_length=200, help_text="You can rename it later."
    )
    email = forms.EmailField(label="Work e-mail")

    field_order = ["organization_name", "email", "password1", "password2"]

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(username__iexact=email).exists():
            raise forms.ValidationError("An account with this e-mail exists already: sign in.")
        return email


class AcceptInvitationForm(PasswordFieldsMixin):
    """A new user setting a password to join through an invitation (e-mail comes from it)."""

    def __init__(self, *args, email: str, **kwargs):
        self.email = email
        super().__init__(*args, **kwargs)


class OrganizationForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = ["name", "currency"]
        help_texts = {"currency": "ISO code the PSA bills in, e.g. USD, EUR, GBP."}

    def clean_currency(self):
        currency = self.cleaned_data["currency"].strip().upper()
        if len(currency) != 3 or not currency.isalpha():
            raise forms.ValidationError("Use a three-letter ISO currency code such as USD.")
        return currency


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)

    def __init__(self, *args, organization: Organization, **kwargs):
        self.organization = organization
        super().__init__(*args, **kwargs)

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        if Membership.objects.filter(
            organization=self.organization, user__email__iexact=email
        ).exists():
            raise forms.ValidationError("This person is a member already.")
        return email


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ActivityFilterForm(forms.Form):
    action = forms.CharField(required=False)
    actor = forms.CharField(required=False, label="Who (e-mail)")
    object_type = forms.CharField(required=False, label="Object")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def filter(self, events):
        if not self.is_valid():
            return events.none()
        data = self.cleaned_data
        if data["action"]:
            events = events.filter(action=data["action"])
        if data["actor"]:
            events = events.filter(actor_email__icontains=data["actor"].strip())
        if data["object_type"]:
            events = events.filter(object_type=data["object_type"])
        if data["since"]:
            events = events.filter(created_at__date__gte=data["since"])
        if data["until"]:
            events = events.filter(created_at__date__lte=data["until"])
        return events
