"""Credential forms, one per PSA: each knows which fields are settings and which are secrets."""

from django import forms

SECRET = forms.PasswordInput(render_value=True, attrs={"autocomplete": "off"})


def _clean_url(value: str) -> str:
    return value.strip().rstrip("/")


class PSAForm(forms.Form):
    description = forms.CharField(
        max_length=200, required=False, help_text="Optional, e.g. the PSA instance's name."
    )
    secret_fields: tuple[str, ...] = ()

    def settings(self) -> dict:
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if name not in self.secret_fields and name != "description"
        }

    def secrets(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.secret_fields}

    def clean(self):
        cleaned = super().clean()
        for name in self.secret_fields:
            value = cleaned.get(name) or ""
            if any(ch.isspace() for ch in value):
                self.add_error(name, "This cannot contain spaces or line breaks.")
        return cleaned


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
        return _clean_url(self.cleaned_data["site"])

    def clean_codebase(self):
        codebase = self.cleaned_data["codebase"].strip().strip("/")
        return f"{codebase}/" if codebase else ""


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
        return _clean_url(self.cleaned_data["zone_lookup_url"])


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
        resource = _clean_url(cleaned.get("resource_server") or "")
        cleaned["resource_server"] = resource
        auth = _clean_url(cleaned.get("auth_server") or "")
        if not auth and resource.endswith("/api"):
            auth = resource.removesuffix("/api") + "/auth"
        if not auth and resource:
            self.add_error("auth_server", "Give the authorisation server (…/auth).")
        cleaned["auth_server"] = auth
        return cleaned


FORMS = {"connectwise": ConnectWiseForm, "autotask": AutotaskForm, "halo": HaloForm}


class ContainerTypesForm(forms.Form):
    types = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        required=True,
        error_messages={"required": "Choose at least one type."},
    )

    def __init__(self, *args, choices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["types"].choices = choices


# What TrueUp keeps to when a connection sets no budget (each adapter's `default_rates`).
DEFAULT_BUDGETS = {
    "connectwise": "not limited; TrueUp backs off when ConnectWise answers 429",
    "autotask": "5,000 an hour (half Autotask's shared 10,000)",
    "halo": "not limited; TrueUp backs off when HaloPSA answers 429",
}
MAX_REQUESTS_PER_MINUTE = 100_000


class RequestBudgetForm(forms.Form):
    """The PSA requests per minute TrueUp keeps to (PSAConnection.settings)."""

    requests_per_minute = forms.IntegerField(
        label="Requests per minute",
        required=False,
        min_value=1,
        max_value=MAX_REQUESTS_PER_MINUTE,
    )

    def __init__(self, *args, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["requests_per_minute"].help_text = (
            f"Empty: the default, {DEFAULT_BUDGETS.get(kind, 'not limited')}. A PSA's limit is "
            "shared by every integration using it; give TrueUp its part. Applies from the next "
            "import or push."
        )
