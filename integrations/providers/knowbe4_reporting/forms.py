"""The Reporting API connect form (one customer account per key) and exclusion patterns."""

from django import forms

from integrations import exclusions
from integrations.providers.knowbe4_partner.forms import APIKeyField, ExpiryField, KeyForm
from integrations.providers.knowbe4_reporting.adapter import reporting_url, site_choices
from reconcile.core.connections import PollingInterval


class ReportingKeyField(APIKeyField):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.help_text = (
            "The customer account's Reporting API token: in that account's console, Account "
            "Settings → Account Integrations → API → Reporting API. One key per customer."
        )


class ReportingConnectForm(KeyForm):
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

    def settings(self) -> dict:
        region = self.cleaned_data["region"]
        return {"region": region, "base_url": reporting_url(region)}


class ReportingRotateForm(KeyForm):
    api_key = ReportingKeyField()
    expires_on = ExpiryField()


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
