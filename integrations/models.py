from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from integrations.providers import PROVIDERS
from reconcile.core.connections import Connection
from reconcile.tenancy.models import Organization


class VendorConnection(Connection):
    """One vendor API credential of an organization, e.g. one KnowBe4 partner key."""

    providers = PROVIDERS
    import_class = "integrations.services.AccountImport"
    side = "vendor"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="vendor_connections"
    )
    kind = models.CharField(max_length=32)  # a kind of integrations.providers.PROVIDERS
    # Set when a person finished mapping its accounts and services (the setup wizard).
    setup_finished_at = models.DateTimeField(null=True, blank=True)
    # Reporting API: one key per customer account; the name a person gives that account.
    account_name = models.CharField(max_length=200, blank=True)

    def __str__(self):
        if not self.has_credential:
            return self.description or self.kind_label
        name = self.description or self.account_name
        label = name or f"{self.kind_label} ({self.region.upper()})"
        return f"{label} …{self.secret_hint}"

    def get_absolute_url(self) -> str:
        return reverse("integrations:detail", args=[self.pk])

    def imported_counts(self) -> tuple[int, str, str]:
        """(count, noun, more) for the status block: its live accounts."""
        return self.accounts.filter(missing_since=None).count(), "customer account", ""

    def contents(self) -> dict:
        """What deleting the connection deletes with it, counted (for the audit record)."""
        return {"accounts": self.accounts.count(), "services": self.services.count()}

    # Where the key applies, as stored in `settings` by the connect form.
    @property
    def region(self) -> str:
        return self.settings.get("region", "")

    @property
    def base_url(self) -> str:
        return self.settings.get("base_url", "")

    @property
    def api_schema(self) -> str:
        """Which generation of the API's field names this connection's API speaks."""
        return self.settings.get("api_schema", "")

    def credential(self) -> str:
        """The API key (vendor APIs take one secret)."""
        return self.secrets().get("api_key", "")


class VendorAccount(models.Model):
    """A customer account as the vendor knows it (a KnowBe4 customer of the partner)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ARCHIVED = "archived", "Archived"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="vendor_accounts"
    )
    connection = models.ForeignKey(
        VendorConnection, on_delete=models.CASCADE, related_name="accounts"
    )
    external_id = models.CharField(max_length=64)
    name = models.CharField(max_length=300)
    domain = models.CharField(max_length=253, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    billing_type = models.CharField(max_length=16, blank=True)
    seats_purchased = models.IntegerField(null=True, blank=True)
    active_users = models.IntegerField(null=True, blank=True)
    # Active users not billed because a UserExclusion pattern matches them (None: not known).
    excluded_users = models.IntegerField(null=True, blank=True)
    subscription_level = models.CharField(max_length=100, blank=True)
    subscription_end_date = models.DateField(null=True, blank=True)
    raw = models.JSONField(default=dict)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    # Set when a complete import no longer lists the account; cleared if it comes back.
    missing_since = models.DateTimeField(null=True, blank=True)
    # Matching keys of `name`, kept by reconcile.mapping (which owns the normalisation);
    # `keys_for` is the name they were computed from, so a renamed row is keyed again.
    # (A database default, because imports insert rows with set-based SQL.)
    name_full = models.CharField(max_length=300, blank=True, db_default="")
    name_core = models.CharField(max_length=300, blank=True, db_default="")
    name_legal = models.CharField(max_length=100, blank=True, db_default="")
    keys_for = models.CharField(max_length=300, blank=True, db_default="")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "external_id"], name="one_account_per_external_id"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "name"]),
            # The rows whose name changed since they were keyed: every mapping page asks.
            models.Index(
                fields=["organization"],
                condition=~models.Q(keys_for=models.F("name")),
                name="account_keys_stale",
            ),
        ]

    def __str__(self):
        return self.name


class VendorService(models.Model):
    """A product the vendor sells to the partner's customers (subscription level or add-on)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="vendor_services"
    )
    connection = models.ForeignKey(
        VendorConnection, on_delete=models.CASCADE, related_name="services"
    )
    code = models.CharField(max_length=100)
    name = models.CharField(max_length=200)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "code"], name="one_service_per_code")
        ]

    def __str__(self):
        return self.name


class UsageSnapshot(models.Model):
    """What the vendor reported for one account and service at one successful sync."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(VendorAccount, on_delete=models.CASCADE, related_name="usage")
    service = models.ForeignKey(VendorService, on_delete=models.CASCADE, related_name="usage")
    active_users = models.IntegerField(null=True)
    excluded_users = models.IntegerField(null=True, blank=True)
    seats = models.IntegerField(null=True)
    taken_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The reconcile.sync SyncRun that took it: an id, not a foreign key, because the sync
    # app sits above this one and imports point down only.
    sync_run_id = models.BigIntegerField(null=True, db_index=True)
    # The account's latest points: what it uses now. Older points are history.
    is_current = models.BooleanField(default=True, db_default=True)

    class Meta:
        ordering = ["-taken_at"]
        indexes = [
            models.Index(fields=["account", "service", "-taken_at"]),
            models.Index(fields=["organization", "is_current"]),
        ]

    def __str__(self):
        return f"{self.active_users} active users at {self.taken_at:%Y-%m-%d %H:%M}"


class StagedAccount(models.Model):
    """One account of an import in progress, until the import is merged or discarded.

    Pages are staged as they arrive (so writing overlaps fetching) and merged into
    VendorAccount in one transaction only when every page was fetched.
    """

    sync_run_id = models.BigIntegerField()
    external_id = models.CharField(max_length=64)
    change = models.CharField(max_length=9)  # added | updated | unchanged
    name = models.CharField(max_length=300)
    domain = models.CharField(max_length=253, blank=True)
    status = models.CharField(max_length=16)
    billing_type = models.CharField(max_length=16, blank=True)
    seats_purchased = models.IntegerField(null=True)
    active_users = models.IntegerField(null=True)
    excluded_users = models.IntegerField(null=True, blank=True)
    subscription_level = models.CharField(max_length=100, blank=True)
    subscription_end_date = models.DateField(null=True)
    raw = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sync_run_id", "external_id"], name="staged_once")
        ]

    def __str__(self):
        return f"{self.name} (staged by run {self.sync_run_id})"


class StagedUsage(models.Model):
    """Usage of one service by one staged account whose counts changed (see StagedAccount)."""

    sync_run_id = models.BigIntegerField(db_index=True)
    external_id = models.CharField(max_length=64)
    service_code = models.CharField(max_length=100)
    active_users = models.IntegerField(null=True)
    excluded_users = models.IntegerField(null=True, blank=True)
    seats = models.IntegerField(null=True)

    def __str__(self):
        return f"{self.service_code} of {self.external_id} (staged by run {self.sync_run_id})"


class UserExclusion(models.Model):
    """Users of one vendor account that never count toward billing, by e-mail pattern
    (`svc-*@`, `*@shared.example`). Only connections that see single users apply them."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(VendorAccount, on_delete=models.CASCADE, related_name="exclusions")
    pattern = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pattern"]
        constraints = [
            models.UniqueConstraint(fields=["account", "pattern"], name="exclusion_once")
        ]

    def __str__(self):
        return self.pattern


class CsvProfile(models.Model):
    """How to read one vendor's CSV: which column holds what, saved for next month's file."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(
        VendorConnection, on_delete=models.CASCADE, related_name="csv_profiles"
    )
    name = models.CharField(max_length=100)
    customer_column = models.CharField(max_length=200)
    service_column = models.CharField(max_length=200, blank=True)
    quantity_column = models.CharField(max_length=200)
    # Used when the file has no service column.
    default_service = models.CharField(max_length=200, blank=True)
    delimiter = models.CharField(max_length=1, default=",")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "name"], name="csv_profile_once")
        ]

    def __str__(self):
        return self.name


class CsvUpload(models.Model):
    """One uploaded usage file: previewed (rows and per-row errors) before anything is stored."""

    class State(models.TextChoices):
        PREVIEW = "preview", "Preview"
        IMPORTED = "imported", "Imported"
        DISCARDED = "discarded", "Discarded"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(
        VendorConnection, on_delete=models.CASCADE, related_name="csv_uploads"
    )
    profile = models.ForeignKey(CsvProfile, on_delete=models.SET_NULL, null=True, blank=True)
    file_name = models.CharField(max_length=255)
    encoding = models.CharField(max_length=32)
    content = models.TextField()  # the decoded file, kept until it is imported or discarded
    state = models.CharField(max_length=16, choices=State.choices, default=State.PREVIEW)
    row_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    imported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.file_name
