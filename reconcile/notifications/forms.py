from django import forms

from reconcile.notifications.models import KIND_HELP, Kind


class PreferencesForm(forms.Form):
    """Two boxes per kind: by e-mail, in the app."""

    def __init__(self, *args, current: dict[str, tuple[bool, bool]], **kwargs):
        super().__init__(*args, **kwargs)
        for kind in Kind.values:
            email, in_app = current[kind]
            self.fields[f"email_{kind}"] = forms.BooleanField(required=False, initial=email)
            self.fields[f"in_app_{kind}"] = forms.BooleanField(required=False, initial=in_app)

    def rows(self):
        """(kind label, help, e-mail box, in-app box) for the template's table."""
        return [
            (Kind(kind).label, KIND_HELP[kind], self[f"email_{kind}"], self[f"in_app_{kind}"])
            for kind in Kind.values
        ]

    def chosen(self) -> dict[str, tuple[bool, bool]]:
        data = self.cleaned_data
        return {kind: (data[f"email_{kind}"], data[f"in_app_{kind}"]) for kind in Kind.values}


class ThresholdForm(forms.Form):
    """The organization's digest threshold (owners)."""

    digest_threshold_percent = forms.IntegerField(
        label="Moved by at least (%)",
        min_value=1,
        max_value=1000,
        help_text="Of the customer's previous active user count.",
    )
    digest_threshold_users = forms.IntegerField(
        label="or by at least (users)",
        min_value=1,
        max_value=1_000_000,
        help_text="Either one is enough to list the customer.",
    )
