from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from psa.providers import PROVIDERS
from reconcile.core.connections import Connection
from reconcile.tenancy.models import Organization

QUANTITY = {"max_digits": 12, "decimal_places": 2}
MONEY = {"max_digits": 14, "decimal_places": 4}


class PSAConnection(Connection):
    """One PSA an organization bills through, with its credentials and chosen container types."""

    providers = PROVIDERS
    import_class = "psa.services.PSAImport"
    side = "psa"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="psa_connections"
    )
    kind = models.CharField(max_length=32)  # a kind of psa.providers.PROVIDERS
    # Agreement / contract / invoice types to import; empty means all of them.
    container_type_ids = models.JSONField(default=list)
    container_type_names = models.JSONField(default=list)

    def __str__(self):
        return self.description or self.kind_label

    def get_absolute_url(self) -> str:
        return reverse("psa:detail", args=[self.pk])

    def imported_counts(self) -> tuple[int, str, str]:
        """(count, noun, more) for the status block: its live lines, and its companies."""
        live = {"connection": self, "missing_since": None}
        companies = PSACompany.objects.filter(**live).count()
        return (
            BillingLine.objects.filter(**live).count(),
            "billing line",
            f"{companies} companies · ",
        )

    def contents(self) -> dict:
        """What deleting the connection deletes with it, counted (for the audit record)."""
        return {
            "companies": PSACompany.objects.filter(connection=self).count(),
            "lines": BillingLine.objects.filter(connection=self).count(),
        }

    def audit_fields(self) -> dict:
        return super().audit_fields() | {"container_types": self.container_type_names}


class ImportedRow(models.Model):
    """Columns every row imported from a PSA has."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(PSAConnection, on_delete=models.CASCADE, related_name="+")
    external_id = models.CharField(max_length=64)
    raw = models.JSONField(default=dict)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    # Set when a complete import no longer lists the row; cleared if it comes back.
    missing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class PSACompany(ImportedRow):
    name = models.CharField(max_length=300)
    # Matching keys of `name`, kept by reconcile.mapping (which owns the normalisation);
    # `keys_for` is the name they were computed from, so a renamed row is keyed again.
    # (A database default, because imports insert rows with set-based SQL.)
    name_full = models.CharField(max_length=300, blank=True, db_default="")
    name_core = models.CharField(max_length=300, blank=True, db_default="")
    name_legal = models.CharField(max_length=100, blank=True, db_default="")
    keys_for = models.CharField(max_length=300, blank=True, db_default="")
    identifier = models.CharField(max_length=100, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "external_id"], name="psa_company_once")
        ]
        indexes = [
            models.Index(fields=["organization", "name"]),
            # The rows whose name changed since they were keyed: every mapping page asks.
            models.Index(
                fields=["organization"],
                condition=~models.Q(keys_for=models.F("name")),
                name="company_keys_stale",
            ),
        ]

    def __str__(self):
        return self.name


class PSAProduct(ImportedRow):
    identifier = models.CharField(max_length=100, blank=True)
    name = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    unit_price = models.DecimalField(null=True, blank=True, **MONEY)
    unit_cost = models.DecimalField(null=True, blank=True, **MONEY)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "external_id"], name="psa_product_once")
        ]
        indexes = [models.Index(fields=["connection", "identifier"])]

    def __str__(self):
        return self.label(self.name, self.identifier)

    @staticmethod
    def label(name: str, identifier: str) -> str:
        return f"{name} ({identifier})" if identifier else name


class BillingContainer(ImportedRow):
    """A recurring agreement (ConnectWise), contract (Autotask) or invoice (Halo)."""

    company = models.ForeignKey(
        PSACompany, on_delete=models.CASCADE, null=True, related_name="containers"
    )
    kind = models.CharField(max_length=32)
    type_name = models.CharField(max_length=200, blank=True)
    name = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=64, blank=True)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "external_id"], name="container_once")
        ]

    def __str__(self):
        return self.name or f"{self.kind} {self.external_id}"


class BillingLine(ImportedRow):
    """A billable seat line on a recurring container: what the PSA bills a customer."""

    container = models.ForeignKey(BillingContainer, on_delete=models.CASCADE, related_name="lines")
    company = models.ForeignKey(
        PSACompany, on_delete=models.CASCADE, null=True, related_name="billing_lines"
    )
    product = models.ForeignKey(
        PSAProduct, on_delete=models.SET_NULL, null=True, related_name="billing_lines"
    )
    description = models.CharField(max_length=500, blank=True)
    quantity = models.DecimalField(**QUANTITY)
    included_quantity = models.DecimalField(default=0, **QUANTITY)
    unit_price = models.DecimalField(null=True, blank=True, **MONEY)
    effective_date = models.DateField(null=True, blank=True)
    cancelled_date = models.DateField(null=True, blank=True)
    read_only_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["container", "id"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "external_id"], name="line_once")
        ]
        indexes = [models.Index(fields=["organization", "company", "product"])]

    def __str__(self):
        return f"{self.description or self.product} × {self.quantity}"

    @property
    def billed_quantity(self):
        """What the customer pays for: the quantity plus what the PSA includes separately."""
        return self.quantity + self.included_quantity


class QuantityPush(models.Model):
    """One attempt to change a line's quantity in the PSA: the ledger finance can trust."""

    class Outcome(models.TextChoices):
        CONFIRMED = "confirmed", "Confirmed"
        REJECTED = "rejected", "Rejected by the PSA"
        UNCONFIRMED = "unconfirmed", "Unconfirmed (read-back differs)"
        FAILED = "failed", "Failed (no answer)"
        REFUSED = "refused", "Refused before sending"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    line = models.ForeignKey(
        BillingLine, on_delete=models.SET_NULL, null=True, related_name="pushes"
    )
    line_repr = models.CharField(max_length=300)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    actor_email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    old_quantity = models.DecimalField(null=True, **QUANTITY)
    requested_quantity = models.DecimalField(**QUANTITY)
    sent_change = models.DecimalField(null=True, **QUANTITY)  # absolute or delta, as sent
    readback_quantity = models.DecimalField(null=True, **QUANTITY)
    effective_date = models.DateField(null=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    message = models.TextField(blank=True)
    status_code = models.IntegerField(null=True)
    body_excerpt = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.line_repr}: {self.old_quantity} → {self.requested_quantity} ({self.outcome})"
