import re

from django import forms
from django.conf import settings

from integrations.providers.csv_upload.parser import DELIMITERS, MAX_SERVICE

GUESSES = {
    "customer_column": r"customer|client|company|account|organi[sz]ation|tenant|name",
    "service_column": r"service|product|sku|plan|item|description",
    "quantity_column": r"quantity|qty|count|seats|users|licen[cs]es?|units|amount|total",
}


class ConnectionForm(forms.Form):
    description = forms.CharField(
        label="Name",
        max_length=200,
        help_text="What the files hold, e.g. “Acme Backup usage”. One connection per kind of "
        "file: each file you confirm replaces the previous one in full.",
    )


class UploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,text/csv"}),
    )
    profile = forms.ModelChoiceField(
        label="Column mapping",
        queryset=None,
        required=False,
        empty_label="New mapping: choose the columns next",
        help_text="A saved mapping goes straight to the preview.",
    )

    def __init__(self, *args, connection, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["profile"].queryset = connection.csv_profiles.all()
        limit = settings.TRUEUP_CSV_MAX_BYTES / 1024 / 1024
        self.fields["file"].help_text = (
            f"One row per customer and service, with a header row; at most {limit:.0f} MB and "
            f"{settings.TRUEUP_CSV_MAX_ROWS:,} rows. UTF-8 or Windows-1252; comma, semicolon "
            "or tab separated."
        )


class MappingForm(forms.Form):
    delimiter = forms.ChoiceField(label="Columns separated by", choices=DELIMITERS.items())
    customer_column = forms.ChoiceField(label="Customer name column")
    service_column = forms.ChoiceField(label="Service column", required=False)
    default_service = forms.CharField(
        label="Service name",
        max_length=MAX_SERVICE,
        required=False,
        help_text="When the file has no service column: the service every row counts, "
        "e.g. “Acme Backup (per GB)”.",
    )
    quantity_column = forms.ChoiceField(
        label="Quantity column",
        help_text="Whole numbers only: no decimals, no thousands separators.",
    )
    name = forms.CharField(
        label="Save as",
        max_length=100,
        help_text="A name for this mapping, to choose it with next month's file. Saving under "
        "an existing name replaces that mapping.",
    )

    def __init__(self, *args, columns: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        names = list(dict.fromkeys(name for name in columns if name))
        choices = [(name, name) for name in names]
        self.fields["customer_column"].choices = choices
        self.fields["quantity_column"].choices = choices
        self.fields["service_column"].choices = [
            ("", "No service column: one service for every row"),
            *choices,
        ]
        if not self.is_bound:
            taken = set()
            for field_name, pattern in GUESSES.items():
                guess = next(
                    (
                        name
                        for name in names
                        if name not in taken and re.search(pattern, name, re.IGNORECASE)
                    ),
                    None,
                )
                if guess and field_name not in self.initial:
                    self.initial[field_name] = guess
                    taken.add(guess)

    def clean(self):
        data = super().clean()
        customer, quantity = data.get("customer_column"), data.get("quantity_column")
        service = data.get("service_column")
        if customer and customer == quantity:
            self.add_error("quantity_column", "The quantity cannot be the customer column.")
        if service and service in (customer, quantity):
            self.add_error("service_column", "Choose a column not used for customer or quantity.")
        if not service and not data.get("default_service", "").strip():
            self.add_error(
                "default_service", "Name the service, or choose the column that holds it."
            )
        if service:
            data["default_service"] = ""
        return data
