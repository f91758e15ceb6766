"""What every connection to the outside world has, vendor or PSA (an abstract model)."""

from django.db import models
from django.utils import timezone


class PollingInterval(models.IntegerChoices):
    """Minutes between scheduled syncs; 0 means the connection is synced by hand only."""

    DISABLED = 0, "Disabled (sync by hand only)"
    HOURLY = 60, "Every hour"
    SIX_HOURS = 360, "Every 6 hours"
    DAILY = 1440, "Daily"
    WEEKLY = 10080, "Weekly"


class Connection(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        ACTIVE = "active", "Active"
        ERROR = "error", "Error"
        DISABLED = "disabled", "Disabled"

    description = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    polling_interval = models.PositiveIntegerField(
        choices=PollingInterval.choices, default=PollingInterval.DAILY
    )
    # Minutes that must pass between two syncs started by hand ("Sync now").
    min_manual_interval = models.PositiveIntegerField(default=15)

    class Meta:
        abstract = True
        ordering = ["created_at"]

    def mark_succeeded(self, **changes) -> None:
        type(self).objects.filter(pk=self.pk).update(
            state=self.State.ACTIVE, last_success_at=timezone.now(), last_error="", **changes
        )

    def mark_failed(self, message: str) -> None:
        type(self).objects.filter(pk=self.pk).update(
            state=self.State.ERROR, last_error_at=timezone.now(), last_error=message
        )
