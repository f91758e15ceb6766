"""What every connection to the outside world has, vendor or PSA (an abstract model).

One credential store for both sides: `settings` holds what is not secret (a region, a base
URL, a site and codebase, a request budget, the API schema detected), `secrets_encrypted` the
secrets as one encrypted JSON object, `secret_hint` the last four characters a person
recognises them by. The provider's adapter is built from the two (`adapter()`).
"""

import json

from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string

from reconcile.core import crypto


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
    settings = models.JSONField(default=dict)
    secrets_encrypted = models.TextField(blank=True)
    secret_hint = models.CharField(max_length=8, blank=True)
    # The expiry date a person gave the credential, so TrueUp can warn before it stops working.
    credential_expires_on = models.DateField(null=True, blank=True)
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
    # Quarantine: after repeated failures (or one rejected credential) the schedule pauses
    # until a person tests the connection and resumes it.
    consecutive_failures = models.PositiveIntegerField(default=0)
    quarantined_at = models.DateTimeField(null=True, blank=True)
    quarantine_reason = models.TextField(blank=True)

    # The side's providers (reconcile.core.providers.Registry); `kind` is one of their kinds.
    providers = None
    side = ""  # "vendor" or "psa": names its runs' foreign key and its schedules
    import_class = ""  # dotted path of the side's reconcile.core.imports.Import

    class Meta:
        abstract = True
        ordering = ["created_at"]

    @property
    def provider(self):
        return self.providers[self.kind]

    @property
    def kind_label(self) -> str:
        return self.providers.label(self.kind)

    def adapter(self):
        """The provider's adapter for this connection: the one way to build one."""
        return self.provider.adapter_class.for_connection(self)

    @property
    def concurrency(self) -> int:
        """Requests in flight at once: the connection's setting, else its adapter's default."""
        return self.settings.get("concurrency") or self.provider.adapter_class.default_concurrency

    def start_import(self, sync_run_id: int):
        """The side's import (reconcile.core.imports) for one run of this connection."""
        return import_string(self.import_class)(self, sync_run_id)

    @property
    def has_credential(self) -> bool:
        return self.provider.has_credential

    def set_secrets(self, secrets: dict) -> None:
        self.secrets_encrypted = crypto.encrypt(json.dumps(secrets))
        longest = max(secrets.values(), key=len, default="")
        self.secret_hint = longest[-4:]

    def secrets(self) -> dict:
        return json.loads(crypto.decrypt(self.secrets_encrypted)) if self.secrets_encrypted else {}

    def audit_fields(self) -> dict:
        """What an audit record may say about this connection: never a secret."""
        return {
            "kind": self.kind,
            "description": self.description,
            "settings": self.settings,
            "secret_last4": self.secret_hint,
            "expires_on": str(self.credential_expires_on or ""),
            "state": self.state,
        }

    @property
    def confirm_name(self) -> str:
        """What a person types to confirm deleting the connection."""
        return self.description or self.kind_label

    @property
    def is_quarantined(self) -> bool:
        return self.quarantined_at is not None

    @property
    def is_paused(self) -> bool:
        """Deactivated or quarantined: no schedule, no pushes."""
        return self.state == self.State.DISABLED or self.is_quarantined

    def mark_succeeded(self, **changes) -> None:
        type(self).objects.filter(pk=self.pk).update(
            state=self.State.ACTIVE,
            last_success_at=timezone.now(),
            last_error="",
            consecutive_failures=0,
            **changes,
        )

    def mark_failed(
        self, message: str, *, credential_rejected: bool = False, counts: bool = True
    ) -> bool:
        """Record a failed run; quarantine the connection when retrying cannot help (the
        credential was rejected) or after TRUEUP_QUARANTINE_AFTER failures in a row. A
        failure that says when to come back (a daily cap) does not count (`counts=False`).
        Returns True when this failure quarantined it."""
        now = timezone.now()
        type(self).objects.filter(pk=self.pk).update(
            state=self.State.ERROR,
            last_error_at=now,
            last_error=message,
            consecutive_failures=F("consecutive_failures") + (1 if counts else 0),
        )
        self.refresh_from_db()
        if self.is_quarantined:
            return False
        if credential_rejected:
            reason = f"The credential was rejected: {message}"
        elif self.consecutive_failures >= settings.TRUEUP_QUARANTINE_AFTER:
            reason = f"{self.consecutive_failures} syncs failed in a row. Last error: {message}"
        else:
            return False
        quarantined = (
            type(self)
            .objects.filter(pk=self.pk, quarantined_at=None)
            .update(quarantined_at=now, quarantine_reason=reason)
        )
        self.refresh_from_db()
        return bool(quarantined)

    def resume(self) -> None:
        """Lift the quarantine (after a successful test); the schedule restarts."""
        type(self).objects.filter(pk=self.pk).update(
            quarantined_at=None, quarantine_reason="", consecutive_failures=0
        )
        self.refresh_from_db()
