"""ConnectWise's connect form: site, client ID, the API member's company and keys."""

from django import forms

from psa.forms import SECRET, PSAForm, clean_url


class ConnectWiseForm(PSAForm):
    site = forms.URLField(
        assume_scheme="https",
        label="Site",
        initial="https://api-na.myconnectwise.net",
        help_text="Your ConnectWise API site, e.g. https://api-na.myconnectwise.net "
        "(api-eu, api-au for other regions) or your own server.",
    )
    company_id = forms.CharField(
        label="Company ID", max_length=100, help_text="The company you sign in with."
    )
    public_key = forms.CharField(label="Public key", max_length=200)
    private_key = forms.CharField(label="Private key", max_length=200, widget=SECRET)
    client_id = forms.CharField(
        label="Client ID",
        max_length=100,
        help_text="From developer.connectwise.com → Client IDs.",
    )
    codebase = forms.CharField(
        required=False,
        max_length=50,
        help_text="Leave empty: TrueUp asks ConnectWise (e.g. v2025_1/).",
    )
    secret_fields = ("company_id", "public_key", "private_key")
    field_order = [
        "site",
        "company_id",
        "public_key",
        "private_key",
        "client_id",
        "codebase",
        "description",
    ]

    def clean_site(self):
        return clean_url(self.cleaned_data["site"])

    def clean_codebase(self):
        codebase = self.cleaned_data["codebase"].strip().strip("/")
        return f"{codebase}/" if codebase else ""
