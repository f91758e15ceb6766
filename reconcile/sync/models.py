from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from integrations.models import VendorConnection
from psa.models import PSAConnection
from reconcile.tenancy.models import Organization


class SyncRun(models.Model):
    """One import of one connection: its state, progress, counts and a log a person can read."""

    class Trigger(models.TextChoices):
        CONNECT = "connect", "Connected"
        FINISH = "finish", "Setup finished"
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Manual"

    class Kind(models.TextChoices):
        QUICK = "quick", "Quick"
        FULL = "full", "Full"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "Unknown"

    ACTIVE_STATES = (State.QUEUED, State.RUNNING)

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    # Exactly one of the two: the vendor or the PSA connection this run imports.
    vendor_connection = models.ForeignKey(
        VendorConnection, on_delete=models.CASCADE, null=True, blank=True, related_name="sync_runs"
    )
    psa_connection = models.ForeignKey(
        PSAConnection, on_delete=models.CASCADE, null=True, blank=True, related_name="sync_runs"
    )
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.FULL)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(null=True, blank=True)
    added = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error_class = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    log = models.JSONField(default=list)

    class Meta:
        ordering = ["-queued_at", "-id"]
        constraints = [
            # At most one queued or running run per connection, whatever the number of workers.
            models.UniqueConstraint(
                fields=["vendor_connection"],
                condition=models.Q(state__in=["queued", "running"]),
                name="one_active_run_per_vendor_connection",
            ),
            models.UniqueConstraint(
                fields=["psa_connection"],
                condition=models.Q(state__in=["queued", "running"]),
                name="one_active_run_per_psa_connection",
            ),
            models.CheckConstraint(
                condition=models.Q(vendor_connection__isnull=True, psa_connection__isnull=False)
                | models.Q(vendor_connection__isnull=False, psa_connection__isnull=True),
                name="run_of_one_connection",
            ),
        ]

    def __str__(self):
        return f"Sync {self.pk} of {self.connection} ({self.state})"

    @property
    def connection(self):
        return self.vendor_connection or self.psa_connection

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    @property
    def percent(self) -> int | None:
        if not self.progress_total:
            return None
        return min(100, round(100 * self.progress_done / self.progress_total))

    def time_left(self, now=None) -> timedelta | None:
        """At the pace of the pages so far, how long the rest takes; None until the total
        is known and a page has arrived (an honest estimate or none)."""
        if not (self.is_active and self.started_at and self.progress_total and self.progress_done):
            return None
        elapsed = (now or timezone.now()) - self.started_at
        remaining = max(self.progress_total - self.progress_done, 0)
        return elapsed * remaining / self.progress_done

    @property
    def time_left_text(self) -> str:
        left = self.time_left()
        if left is None:
            return ""
        minutes = round(left.total_seconds() / 60)
        if minutes < 1:
            return "less than a minute left"
        return f"about {minutes} minute{'s' if minutes != 1 else ''} left"

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    def note(self, message: str, level: str = "info") -> None:
        """Append a line to the run log (saved with the next save)."""
        self.log.append(
            {"at": timezone.now().isoformat(timespec="seconds"), "level": level, "message": message}
        )
