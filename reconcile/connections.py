"""What every connection to the outside world has, vendor or PSA (an abstract model)."""

from django.db import models
from django.utils import timezone


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
