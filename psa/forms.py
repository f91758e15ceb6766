"""The forms every PSA shares: the base of each provider's connect form, types and budget."""

from django import forms

from psa.providers import PROVIDERS

SECRET = forms.PasswordInput(render_value=True, attrs={"autocomplete": "off"})


def clean_url(value: str) -> str:
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


class ContainerTypesForm(forms.Form):
    types = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        required=True,
        error_messages={"required": "Choose at least one type."},
    )

    def __init__(self, *args, choices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["types"].choices = choices


MAX_REQUESTS_PER_MINUTE = 100_000
MAX_CONCURRENCY = 16


class RequestBudgetForm(forms.Form):
    """The PSA requests per minute TrueUp keeps to and how many at once
    (PSAConnection.settings)."""

    requests_per_minute = forms.IntegerField(
        label="Requests per minute",
        required=False,
        min_value=1,
        max_value=MAX_REQUESTS_PER_MINUTE,
    )

    concurrency = forms.IntegerField(
        label="Requests at once",
        required=False,
        min_value=1,
        max_value=MAX_CONCURRENCY,
    )

    def __init__(self, *args, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["requests_per_minute"].help_text = (
            f"Empty: the default, {PROVIDERS[kind].budget}. A PSA's limit is "
            "shared by every integration using it; give TrueUp its part. Applies from the next "
            "import or push."
        )
        default = PROVIDERS[kind].adapter_class.default_concurrency
        self.fields["concurrency"].help_text = (
            f"Empty: the default, {default}. Requests that do not wait for each other (pages, "
            "per-agreement lines, pushes to different lines) go out this many at once, within "
            "the budget."
        )
