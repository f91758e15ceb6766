from django.conf import settings
from django.db import models
from django.utils import timezone

from integrations.models import VendorAccount, VendorService
from psa.models import PSACompany, PSAProduct
from reconcile.tenancy.models import Organization


class Source(models.TextChoices):
    AUTO = "auto", "Exact name"
    SUGGESTION = "suggestion", "Accepted suggestion"
    MANUAL = "manual", "By hand"
    ALIAS = "alias", "Confirmed alias"


class MappingState(models.TextChoices):
    MAPPED = "mapped", "Mapped"
    EXCLUDED = "excluded", "Excluded"


class AccountMapping(models.Model):
    """Which PSA company a vendor account is billed as, or that it is left out of billing.

    Unmapped is the absence of a row.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    vendor_account = models.OneToOneField(
        VendorAccount, on_delete=models.CASCADE, related_name="mapping"
    )
    psa_company = models.ForeignKey(
        PSACompany,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="account_mappings",
    )
    state = models.CharField(max_length=16, choices=MappingState.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    score = models.FloatField(null=True, blank=True)
    mapped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    mapped_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state="mapped", psa_company__isnull=False)
                | models.Q(state="excluded", psa_company__isnull=True),
                name="account_mapped_to_a_company_or_excluded",
            )
        ]

    def __str__(self):
        target = self.psa_company or "excluded"
        return f"{self.vendor_account} → {target}"


class ServiceMapping(models.Model):
    """A vendor service billed as a PSA product. Several services may map to one product (their
    counts add up), and one service to products of several PSA connections."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    vendor_service = models.ForeignKey(
        VendorService, on_delete=models.CASCADE, related_name="mappings"
    )
    psa_product = models.ForeignKey(
        PSAProduct, on_delete=models.CASCADE, null=True, blank=True, related_name="mappings"
    )
    state = models.CharField(max_length=16, choices=MappingState.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    mapped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    mapped_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["vendor_service", "psa_product"], name="service_mapped_once"
            ),
            models.UniqueConstraint(
                fields=["vendor_service"],
                condition=models.Q(state="excluded"),
                name="service_excluded_once",
            ),
            models.CheckConstraint(
                condition=models.Q(state="mapped", psa_product__isnull=False)
                | models.Q(state="excluded", psa_product__isnull=True),
                name="service_mapped_to_a_product_or_excluded",
            ),
        ]

    def __str__(self):
        return f"{self.vendor_service} → {self.psa_product or 'excluded'}"


class MatchAlias(models.Model):
    """A vendor name a person confirmed as a PSA company: maps automatically from then on."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    vendor_name = models.CharField(max_length=300)  # casefolded, whitespace collapsed
    psa_company = models.ForeignKey(PSACompany, on_delete=models.CASCADE, related_name="aliases")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "vendor_name", "psa_company"], name="alias_once"
            )
        ]

    def __str__(self):
        return f"{self.vendor_name} = {self.psa_company}"


class RejectedSuggestion(models.Model):
    """A suggestion a person said no to: never offered again."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    vendor_account = models.ForeignKey(
        VendorAccount, on_delete=models.CASCADE, related_name="rejected_suggestions"
    )
    psa_company = models.ForeignKey(PSACompany, on_delete=models.CASCADE, related_name="+")
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    rejected_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["vendor_account", "psa_company"], name="rejected_once")
        ]

    def __str__(self):
        return f"{self.vendor_account} ≠ {self.psa_company}"
