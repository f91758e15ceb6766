import datetime
import re

from django import forms
from django.conf import settings

from integrations import exclusions
from integrations.knowbe4.client import REGIONS
from integrations.knowbe4.reporting import site_choices
from reconcile.connections import PollingInterval

KEY_MAX_LENGTH = 2048
KEY_PATTERN = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces


def region_choices():
    return [
        (code, f"{label} — {settings.KNOWBE4_GRAPHQL_URLS[code]}")
        for code, label in REGIONS.items()
    ]


class APIKeyField(forms.CharField):
    def __init__(self, **kwargs):
        super().__init__(
            label="API key",
            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
            help_text="A Product API token from KnowBe4: Account Settings → API Keys → "
            "Create New API Token (Read Only scope).",
            **kwargs,
        )

    def clean(self, value):
        value = super().clean(value)
        if len(value) > KEY_MAX_LENGTH:
            raise forms.ValidationError(
                f"This is {len(value):,} characters long; a KnowBe4 API key is at most "
                f"{KEY_MAX_LENGTH:,}. Copy the key alone."
            )
        if any(ch.isspace() for ch in value):
            raise forms.ValidationError(
                "The API key cannot contain spaces or line breaks. Copy the key alone."
            )
        if not KEY_PATTERN.match(value):
            raise forms.ValidationError("The API key has characters a KnowBe4 key never has.")
        return value


class ExpiryField(forms.DateField):
    def __init__(self, **kwargs):
        super().__init__(
            label="Key expires on",
            required=False,
            widget=forms.DateInput(attrs={"type": "date"}),
            help_text="The expiration date you set when creating the token, so TrueUp can "
            "warn you before it stops working.",
            **kwargs,
        )

    def clean(self, value):
        value = super().clean(value)
        if value and value < datetime.date.today():
            raise forms.ValidationError("This date has passed: the key would not work.")
        return value


class ConnectForm(forms.Form):
    api_key = APIKeyField()
    region = forms.ChoiceField(label="API URL", choices=region_choices, initial="us")
    description = forms.CharField(
        max_length=200,
        required=False,
        help_text="Optional, e.g. the partner account's name when you have several.",
    )
    expires_on = ExpiryField()


class RotateForm(forms.Form):
    api_key = APIKeyField()
    expires_on = ExpiryField()


class ReportingKeyField(APIKeyField):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.help_text = (
            "The customer account's Reporting API token: in that account's console, Account "
            "Settings → Account Integrations → API → Reporting API. One key per customer."
        )


class ReportingConnectForm(forms.Form):
    """A KnowBe4 Reporting API key: one customer account, for MSPs without the partner plan."""

    region = forms.ChoiceField(label="Site", choices=site_choices, initial="us")
    api_key = ReportingKeyField()
    account_name = forms.CharField(
        label="Account name",
        max_length=200,
        required=False,
        help_text="The customer this key belongs to, as you call it. Leave it empty to use the "
        "name KnowBe4 has for the account.",
    )
    description = forms.CharField(
        label="Description",
        max_length=200,
        required=False,
        help_text="Optional, e.g. who made the key or what it is for.",
    )
    polling_interval = forms.TypedChoiceField(
        label="Polling interval",
        choices=PollingInterval.choices,
        coerce=int,
        initial=PollingInterval.DAILY,
        help_text="How often TrueUp reads the account. Each sync takes about one request per "
        "500 active users, well within the key's daily limit.",
    )


class ExclusionForm(forms.Form):
    """One e-mail pattern of users that never count toward billing (integrations.exclusions)."""

    pattern = forms.CharField(
        label="E-mail pattern",
        max_length=exclusions.MAX_LENGTH,
        help_text="* matches any characters and ? one character: svc-*@ excludes those "
        "mailboxes on any domain, *@example-shared.com a whole domain, scanner@client.com "
        "one mailbox. Upper and lower case are the same.",
    )

    def __init__(self, *args, account=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.account = account

    def clean_pattern(self):
        try:
            pattern = exclusions.normalise(self.cleaned_data["pattern"])
        except ValueError as error:
            raise forms.ValidationError(str(error)) from error
        if self.account and self.account.exclusions.filter(pattern=pattern).exists():
            raise forms.ValidationError(f"{pattern} is already in the list.")
        return pattern
