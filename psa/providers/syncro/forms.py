"""Syncro's connect form: the account's address and an API token."""

from django import forms

from psa.forms import SECRET, PSAForm, clean_url

API_PATH = "/api/v1"


class SyncroForm(PSAForm):
    api_url = forms.CharField(
        label="Syncro address",
        max_length=300,
        help_text="Your subdomain (acme), your Syncro address (https://acme.syncromsp.com) or its "
        "API URL (…/api/v1).",
    )
    api_token = forms.CharField(label="API token", max_length=300, widget=SECRET)
    secret_fields = ("api_token",)
    field_order = ["api_url", "api_token", "description"]

    def clean_api_url(self):
        value = clean_url(self.cleaned_data["api_url"])
        if "." not in value and "/" not in value and ":" not in value:
            value = f"https://{value}.syncromsp.com"  # a bare subdomain
        if "://" not in value:
            value = "https://" + value
        url = forms.URLField(assume_scheme="https").clean(value)
        url = clean_url(url)
        return url if url.endswith(API_PATH) else url + API_PATH
