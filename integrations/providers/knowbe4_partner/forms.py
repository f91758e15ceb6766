import datetime
import re

from django import forms
from django.conf import settings

from integrations.providers.knowbe4_partner.client import REGIONS, graphql_url

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


class KeyForm(forms.Form):
    """A form holding one API key: what the connection store keeps of it."""

    def settings(self) -> dict:
        return {}

    def secrets(self) -> dict:
        return {"api_key": self.cleaned_data["api_key"]}


class ConnectForm(KeyForm):
    api_key = APIKeyField()
    region = forms.ChoiceField(label="API URL", choices=region_choices, initial="us")
    description = forms.CharField(
        max_length=200,
        required=False,
        help_text="Optional, e.g. the partner account's name when you have several.",
    )
    expires_on = ExpiryField()

    def settings(self) -> dict:
        region = self.cleaned_data["region"]
        return {"region": region, "base_url": graphql_url(region)}


class RotateForm(KeyForm):
    api_key = APIKeyField()
    expires_on = ExpiryField()
