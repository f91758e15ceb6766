"""Autotask's connect form: the API-only user, its secret and the integration code."""

from django import forms

from psa.forms import SECRET, PSAForm, clean_url


class AutotaskForm(PSAForm):
    username = forms.EmailField(
        label="API user name", help_text="The API-only user's e-mail address."
    )
    secret = forms.CharField(label="Secret", max_length=200, widget=SECRET)
    integration_code = forms.CharField(
        label="API tracking identifier (integration code)", max_length=200, widget=SECRET
    )
    zone_lookup_url = forms.URLField(
        assume_scheme="https",
        label="Zone lookup URL",
        initial="https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation",
        help_text="Leave as is: TrueUp finds your zone from the user name.",
    )
    secret_fields = ("secret", "integration_code")
    field_order = ["username", "secret", "integration_code", "zone_lookup_url", "description"]

    def clean_zone_lookup_url(self):
        return clean_url(self.cleaned_data["zone_lookup_url"])
