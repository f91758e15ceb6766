from django.conf import settings
from django.db import models
from django.utils import timezone

from reconcile.tenancy.models import Membership, Organization, Role


class Kind(models.TextChoices):
    SYNC_FAILED = "sync_failed", "A sync failed"
    QUARANTINED = "quarantined", "A connection was quarantined"
    CREDENTIAL_EXPIRING = "credential_expiring", "A credential expires within 14 days"
    CREDENTIAL_EXPIRED = "credential_expired", "A credential has expired"
    PUSH_FINISHED = "push_finished", "A push to the PSA finished"
    DIGEST = "digest", "Change digest after a sync"


KIND_HELP = {
    Kind.SYNC_FAILED: "With the error and a link to the run log.",
    Kind.QUARANTINED: "Its schedule and pushes are paused until someone tests and resumes it. "
    "Replaces the sync-failed message of the same failure.",
    Kind.CREDENTIAL_EXPIRING: "A KnowBe4 token's expiry date (asked when connecting) is near.",
    Kind.CREDENTIAL_EXPIRED: "The token's expiry date has passed: syncs will fail.",
    Kind.PUSH_FINISHED: "Confirmed, rejected and unconfirmed lines of the batch.",
    Kind.DIGEST: "Customers whose active users moved past the threshold, new unmapped "
    "accounts and accounts that disappeared. Not sent when nothing changed.",
}

# What a member receives by e-mail until they choose: owners everything, the others what their
# role acts on. In the app everyone sees every kind until they untick it.
EMAIL_DEFAULTS = {
    Role.OWNER: set(Kind.values),
    Role.BILLING: {Kind.DIGEST, Kind.SYNC_FAILED, Kind.QUARANTINED},
    Role.FINANCE: {Kind.PUSH_FINISHED, Kind.DIGEST, Kind.SYNC_FAILED},
    Role.VIEWER: set(),
}


class NotificationPreference(models.Model):
    """What one member chose for one kind; without a row the role's defaults apply."""

    membership = models.ForeignKey(
        Membership, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    email = models.BooleanField()
    in_app = models.BooleanField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["membership", "kind"], name="one_preference_per_kind")
        ]

    def __str__(self):
        return f"{self.kind} for {self.membership_id}: e-mail {self.email}, in-app {self.in_app}"


def channels(membership: Membership) -> dict[str, tuple[bool, bool]]:
    """(e-mail, in-app) per kind for a membership, its choices over the role's defaults. Uses
    the prefetched `notification_preferences` when there are any."""
    chosen = {p.kind: (p.email, p.in_app) for p in membership.notification_preferences.all()}
    defaults = EMAIL_DEFAULTS.get(membership.role, set())
    return {kind: chosen.get(kind, (kind in defaults, True)) for kind in Kind.values}


class Notification(models.Model):
    """One message to one member: listed in the app (when `in_app`) and e-mailed by the worker
    (when `email_state` is pending). Never holds a secret."""

    class EmailState(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENT = "sent", "Sent"
        FAILED = "failed", "Could not be sent"
        SKIPPED = "skipped", "Not e-mailed"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    url = models.CharField(max_length=500)  # an absolute path in TrueUp
    # The event it tells of ("credential_expiring:7:2026-03-01"): each is told once per person.
    dedupe_key = models.CharField(max_length=200)
    in_app = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    email_state = models.CharField(
        max_length=16, choices=EmailState.choices, default=EmailState.PENDING
    )
    email_attempts = models.PositiveSmallIntegerField(default=0)
    # Not before this time: the back-off after a failure, or the lease of the worker sending it.
    email_next_attempt_at = models.DateTimeField(null=True, blank=True)
    email_last_error = models.CharField(max_length=500, blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization", "dedupe_key"], name="notification_once"
            )
        ]
        indexes = [
            models.Index(
                fields=["user", "organization"],
                condition=models.Q(in_app=True, read_at=None),
                name="notification_unread",
            ),
            models.Index(
                fields=["email_next_attempt_at"],
                condition=models.Q(email_state="pending"),
                name="notification_email_pending",
            ),
        ]

    def __str__(self):
        return self.subject

    @property
    def is_unread(self) -> bool:
        return self.read_at is None
