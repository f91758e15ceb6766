from django import forms
from django.utils import timezone

from psa.services import MAX_QUANTITY
from reconcile.review.models import BillingRule
from reconcile.review.services import first_of_next_month


class EffectiveDateField(forms.DateField):
    widget = forms.DateInput(attrs={"type": "date"})

    def validate(self, value):
        super().validate(value)
        if value and value < timezone.localdate():
            raise forms.ValidationError(
                "The effective date cannot be in the past: the PSA would bill a period that "
                "is already invoiced. Pick today or later."
            )


class AdjustForm(forms.Form):
    quantity = forms.DecimalField(
        min_value=0,
        max_value=MAX_QUANTITY,
        decimal_places=2,
        error_messages={
            "invalid": "Enter the quantity as a number, e.g. 42.",
            "min_value": "A quantity cannot be negative.",
            "max_value": f"More than {MAX_QUANTITY:,} seats is surely a typo.",
        },
    )
    effective_date = EffectiveDateField(initial=first_of_next_month)

    def __init__(self, *args, card=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.card = card

    def clean_quantity(self):
        quantity = self.cleaned_data["quantity"]
        line = self.card.line if self.card else None
        whole_units = line and line.connection.provider.adapter_class.whole_units
        if whole_units and quantity != quantity.to_integral_value():
            raise forms.ValidationError(f"{line.connection.kind_label} takes whole seats only.")
        return quantity


class ApproveForm(forms.Form):
    effective_date = EffectiveDateField(required=False)


class DismissForm(forms.Form):
    reason = forms.CharField(
        max_length=300,
        error_messages={"required": 'Say why, so the next person knows (e.g. "trial users").'},
    )


class BulkForm(forms.Form):
    ACTIONS = ["approve", "dismiss", "undo", "effective_date", "tag"]

    action = forms.ChoiceField(choices=[(a, a) for a in ACTIONS])
    ids = forms.TypedMultipleChoiceField(coerce=int, choices=[])
    effective_date = EffectiveDateField(required=False)
    reason = forms.CharField(max_length=300, required=False)
    tag = forms.SlugField(max_length=40, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Any integer is acceptable here; the service keeps only this organization's cards.
        self.fields["ids"].valid_value = lambda value: str(value).isdigit()
        self.fields["ids"].error_messages["required"] = "Select at least one card first."

    def clean(self):
        data = super().clean()
        action = data.get("action")
        if action == "dismiss" and not data.get("reason"):
            self.add_error("reason", "Say why these are dismissed.")
        if action == "effective_date" and not data.get("effective_date"):
            self.add_error("effective_date", "Pick the effective date.")
        if action == "tag" and not data.get("tag"):
            self.add_error("tag", "Name the tag (letters, digits, dashes).")
        return data


class BillingRuleForm(forms.ModelForm):
    class Meta:
        model = BillingRule
        fields = ["exclude_users", "minimum_quantity", "note"]
        labels = {
            "exclude_users": "Users not to bill",
            "minimum_quantity": "Minimum billed quantity",
        }
        help_texts = {
            "exclude_users": "Service accounts, shared mailboxes: subtracted from KnowBe4's count.",
            "minimum_quantity": "The contract's minimum: TrueUp never proposes less.",
        }
        widgets = {"note": forms.Textarea(attrs={"rows": 2})}
