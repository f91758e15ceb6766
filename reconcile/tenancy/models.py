import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class Organization(models.Model):
    """One MSP partner: every piece of data in TrueUp belongs to exactly one organization."""

    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3, default="USD")
    # Owners can require every member to sign in with a second factor (TOTP).
    require_two_factor = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # The change digest after each sync lists customers whose active users moved by at least
    # this share of the previous count, or by at least this many users.
    digest_threshold_percent = models.PositiveSmallIntegerField(default=10)
    digest_threshold_users = models.PositiveIntegerField(default=5)

    def __str__(self):
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    BILLING = "billing", "Billing"
    FINANCE = "finance", "Finance"
    VIEWER = "viewer", "Viewer"


ROLE_HELP = {
    Role.OWNER: "Manages connections and members, and can do everything else.",
    Role.BILLING: "Maps vendor accounts and services to PSA companies and products.",
    Role.FINANCE: "Reviews discrepancies, approves and pushes quantity changes.",
    Role.VIEWER: "Reads everything, changes nothing.",
}


class Membership(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="one_membership")
        ]
        ordering = ["user__email"]

    def __str__(self):
        return f"{self.user} in {self.organization} ({self.role})"

    def has_role(self, *roles: str) -> bool:
        """Owners can do everything; others only what their role names."""
        return self.role == Role.OWNER or self.role in roles


def _invite_token() -> str:
    return secrets.token_urlsafe(32)


def _invite_expiry():
    return timezone.now() + timedelta(days=7)


class Invitation(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices)
    token = models.CharField(max_length=64, unique=True, default=_invite_token)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(default=_invite_expiry)
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Invitation of {self.email} to {self.organization}"

    @property
    def is_open(self) -> bool:
        return self.accepted_at is None and self.expires_at > timezone.now()


class AuditEvent(models.Model):
    """One change a person (or the system on their behalf) made. Never holds a secret."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="audit_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Kept when the user is deleted, so the trail still says who it was.
    actor_email = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self):
        return f"{self.action} by {self.actor_email or 'system'}"
