from django.conf import settings
from django.db import models
from django.utils import timezone

from psa.models import QUANTITY, BillingLine, PSACompany, PSAProduct
from reconcile.tenancy.models import Organization

MONEY = {"max_digits": 14, "decimal_places": 2}


class BillingRule(models.Model):
    """How a billing person wants one line reconciled."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    line = models.OneToOneField(BillingLine, on_delete=models.CASCADE, related_name="rule")
    exclude_users = models.PositiveIntegerField(
        default=0, help_text="Users not to bill, e.g. service accounts."
    )
    minimum_quantity = models.DecimalField(null=True, blank=True, **QUANTITY)
    note = models.TextField(blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"Rule of line {self.line_id}"


class SeatDiscrepancy(models.Model):
    """What the vendor says against what the PSA bills, for one line or company and product.

    Recomputed for the whole organization after every successful sync.
    """

    class Kind(models.TextChoices):
        RECONCILE = "reconcile", "Reconcile"
        NEW_REVENUE = "new_revenue", "New revenue"
        NO_CHANGE = "no_change", "No change"
        NO_VENDOR_DATA = "no_vendor_data", "No vendor data"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices, db_index=True)
    # None for new revenue: usage with no PSA line for that company and product.
    line = models.OneToOneField(
        BillingLine, on_delete=models.CASCADE, null=True, related_name="discrepancy"
    )
    psa_company = models.ForeignKey(PSACompany, on_delete=models.CASCADE, related_name="+")
    psa_product = models.ForeignKey(PSAProduct, on_delete=models.CASCADE, related_name="+")
    vendor_count = models.IntegerField(null=True)
    billed = models.DecimalField(null=True, **QUANTITY)
    target = models.DecimalField(null=True, **QUANTITY)
    delta = models.DecimalField(null=True, **QUANTITY)
    unit_price = models.DecimalField(null=True, max_digits=14, decimal_places=4)
    monthly_change = models.DecimalField(null=True, **MONEY)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["organization", "kind"])]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.billed} billed, {self.target} used"
