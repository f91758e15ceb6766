from django.conf import settings
from django.db import models
from django.utils import timezone

from psa.models import QUANTITY, BillingLine, PSACompany, PSAProduct, QuantityPush
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


class Decision(models.TextChoices):
    APPROVED = "approved", "Approved"
    ADJUSTED = "adjusted", "Adjusted"
    DISMISSED = "dismissed", "Dismissed"


class SeatDiscrepancy(models.Model):
    """What the vendor says against what the PSA bills, for one line or company and product.

    Recomputed for the whole organization after every successful sync.
    """

    class Kind(models.TextChoices):
        RECONCILE = "reconcile", "Reconcile"
        NEW_REVENUE = "new_revenue", "New revenue"
        NO_CHANGE = "no_change", "No change"
        NO_VENDOR_DATA = "no_vendor_data", "No vendor data"

    # Cards are derived data, rewritten in bulk by one reconciliation (50,000 at a first
    # pass): no database constraints on what they point at, whose deferred per-row checks
    # cost a third of that pass. Django still deletes cards with their line, company, product
    # or organization, and the next reconciliation drops any card whose line has gone.
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,  # (organization, kind) below
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # None for new revenue: usage with no PSA line for that company and product.
    line = models.OneToOneField(
        BillingLine,
        on_delete=models.CASCADE,
        null=True,
        related_name="discrepancy",
        db_constraint=False,
    )
    psa_company = models.ForeignKey(
        PSACompany, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    psa_product = models.ForeignKey(
        PSAProduct, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    vendor_count = models.IntegerField(null=True)
    billed = models.DecimalField(null=True, **QUANTITY)
    target = models.DecimalField(null=True, **QUANTITY)
    delta = models.DecimalField(null=True, **QUANTITY)
    unit_price = models.DecimalField(null=True, max_digits=14, decimal_places=4)
    monthly_change = models.DecimalField(null=True, **MONEY)
    # Users the vendor reported but exclusion patterns left out (None: not known); the raw
    # count is vendor_count + vendor_excluded.
    vendor_excluded = models.IntegerField(null=True)
    computed_at = models.DateTimeField(default=timezone.now)

    # What finance decided about these numbers. Reconciliation clears it when the numbers
    # change, so a dismissed card comes back and an approval never applies to other numbers.
    decision = models.CharField(
        max_length=16, choices=Decision.choices, blank=True, default="", db_default=""
    )
    decided_quantity = models.DecimalField(null=True, **QUANTITY)
    effective_date = models.DateField(null=True)
    dismiss_reason = models.CharField(max_length=300, blank=True, default="", db_default="")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        db_index=False,  # never looked up by; an index would only slow the bulk writes
    )
    decided_at = models.DateTimeField(null=True)
    # The latest push of this card, whatever its outcome; kept across recomputations.
    push_item = models.ForeignKey(
        "PushItem", on_delete=models.SET_NULL, null=True, related_name="+", db_index=False
    )

    class Meta:
        indexes = [models.Index(fields=["organization", "kind"])]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.billed} billed, {self.target} used"

    @property
    def is_pushing(self) -> bool:
        return bool(self.push_item_id) and self.push_item.state in PushItem.ACTIVE

    @property
    def can_act(self) -> bool:
        """Approve, adjust and dismiss make sense: there is a difference and no push runs."""
        return self.kind in (self.Kind.RECONCILE, self.Kind.NEW_REVENUE) and not self.is_pushing


class CompanyTag(models.Model):
    """A label finance puts on a customer ("arrears", "non-profit") to filter the review by."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    psa_company = models.ForeignKey(PSACompany, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=40)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["psa_company", "name"], name="company_tag_once")
        ]

    def __str__(self):
        return self.name


class CountHistory(models.Model):
    """A change point of one card's numbers: vendor users and billed quantity from `day` on.

    Written by reconciliation only when a card's numbers change, so a line's chart and the
    dashboard's 12 months read a few rows per line, not one per sync.
    """

    # Append-only history written in bulk (a first reconciliation writes a point per card):
    # no database constraints, whose per-row checks would cost more than the insert itself;
    # Django still deletes the points with their line, company or product.
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,  # (organization, day) below
    )
    line = models.ForeignKey(
        BillingLine,
        on_delete=models.CASCADE,
        null=True,
        related_name="+",
        db_constraint=False,
        db_index=False,  # (line, day) below
    )
    psa_company = models.ForeignKey(
        PSACompany,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,  # read only through (organization, day) and (line, day)
    )
    psa_product = models.ForeignKey(
        PSAProduct,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    day = models.DateField()
    vendor_count = models.IntegerField(null=True)
    billed = models.DecimalField(null=True, **QUANTITY)

    class Meta:
        ordering = ["day", "id"]
        indexes = [
            models.Index(fields=["organization", "day"]),
            models.Index(fields=["line", "day"]),
        ]

    def __str__(self):
        return f"{self.day}: {self.vendor_count} used, {self.billed} billed"


class PushBatch(models.Model):
    """Changes finance approved, shown as a Test Mode report, then pushed by the worker."""

    class State(models.TextChoices):
        DRAFT = "draft", "Test Mode report (nothing sent)"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Pushing"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Push batch {self.pk} ({self.get_state_display()})"

    @property
    def is_active(self) -> bool:
        return self.state in (self.State.QUEUED, self.State.RUNNING)


class PushItem(models.Model):
    """One line of a push batch: what Test Mode showed, then what the PSA did with it."""

    class State(models.TextChoices):
        PLANNED = "planned", "Planned"
        BLOCKED = "blocked", "Cannot be pushed"
        QUEUED = "queued", "Waiting"
        PUSHING = "pushing", "Pushing"
        CONFIRMED = "confirmed", "Confirmed"
        REJECTED = "rejected", "Rejected by the PSA"
        UNCONFIRMED = "unconfirmed", "Unconfirmed"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted"

    ACTIVE = (State.QUEUED, State.PUSHING)
    # What a person may send again: the push reads the line first, so a retry never doubles.
    RETRYABLE = (State.UNCONFIRMED, State.FAILED, State.INTERRUPTED)

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    batch = models.ForeignKey(PushBatch, on_delete=models.CASCADE, related_name="items")
    discrepancy = models.ForeignKey(
        SeatDiscrepancy, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    line = models.ForeignKey(BillingLine, on_delete=models.SET_NULL, null=True, related_name="+")
    # What the report showed, kept as text so the report and its CSV outlive the rows.
    psa_name = models.CharField(max_length=200)
    company_name = models.CharField(max_length=300)
    container_name = models.CharField(max_length=300, blank=True)
    product_name = models.CharField(max_length=300)
    current_quantity = models.DecimalField(null=True, **QUANTITY)
    new_quantity = models.DecimalField(null=True, **QUANTITY)
    effective_date = models.DateField(null=True)
    unit_price = models.DecimalField(null=True, max_digits=14, decimal_places=4)
    monthly_change = models.DecimalField(null=True, **MONEY)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PLANNED)
    message = models.TextField(blank=True)  # why it is blocked, or what the PSA answered
    push = models.ForeignKey(QuantityPush, on_delete=models.SET_NULL, null=True, related_name="+")
    attempts = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            # One push of a line at a time, across batches and worker clusters.
            models.UniqueConstraint(
                fields=["line"],
                condition=models.Q(state__in=["queued", "pushing"]),
                name="one_active_push_per_line",
            )
        ]

    def __str__(self):
        change = f"{self.current_quantity} → {self.new_quantity}"
        return f"{self.company_name} · {self.product_name}: {change}"
