"""HaloPSA's connect form: resource and authorisation servers, client ID and secret."""

from django import forms

from psa.forms import SECRET, PSAForm, clean_url


class HaloForm(PSAForm):
    resource_server = forms.URLField(
        assume_scheme="https",
        label="Resource server",
        help_text="Your Halo API URL, e.g. https://acme.halopsa.com/api",
    )
    auth_server = forms.URLField(
        assume_scheme="https",
        label="Authorisation server",
        required=False,
        help_text="Leave empty when it is the resource server with /auth instead of /api.",
    )
    tenant = forms.CharField(
        required=False, max_length=100, help_text="Only for hosted Halo instances that ask for it."
    )
    client_id = forms.CharField(label="Client ID", max_length=200)
    client_secret = forms.CharField(label="Client secret", max_length=300, widget=SECRET)
    secret_fields = ("client_id", "client_secret")
    field_order = [
        "resource_server",
        "auth_server",
        "tenant",
        "client_id",
        "client_secret",
        "description",
    ]

    def clean(self):
        cleaned = super().clean()
        resource = clean_url(cleaned.get("resource_server") or "")
        cleaned["resource_server"] = resource
        auth = clean_url(cleaned.get("auth_server") or "")
        if not auth and resource.endswith("/api"):
            auth = resource.removesuffix("/api") + "/auth"
        if not auth and resource:
            self.add_error("auth_server", "Give the authorisation server (…/auth).")
        cleaned["auth_server"] = auth
        return cleaned
