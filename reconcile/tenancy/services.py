"""Changes to organizations and their members; each writes its audit event atomically."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django_q.tasks import async_task

from reconcile.tenancy import audit
from reconcile.tenancy.models import Invitation, Membership, Organization, Role

User = get_user_model()


class LastOwnerError(Exception):
    """An organization must keep at least one owner."""


@transaction.atomic
def create_organization(name: str, owner, currency: str = "USD") -> Organization:
    organization = Organization.objects.create(name=name, currency=currency)
    membership = Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
    audit.record(
        organization,
        owner,
        "organization.created",
        organization,
        after={"name": name, "currency": currency},
    )
    audit.record(
        organization,
        owner,
        "member.joined",
        membership,
        after={"email": owner.email, "role": "owner"},
    )
    return organization


@transaction.atomic
def sign_up(email: str, password: str, organization_name: str):
    user = User.objects.create_user(username=email, email=email, password=password)
    return user, create_organization(organization_name, user)


@transaction.atomic
def update_organization(organization: Organization, actor, **changes) -> None:
    before = {field: getattr(organization, field) for field in changes}
    for field, value in changes.items():
        setattr(organization, field, value)
    organization.save(update_fields=list(changes))
    audit.record(
        organization, actor, "organization.updated", organization, before=before, after=changes
    )


@transaction.atomic
def invite(organization: Organization, actor, email: str, role: str, accept_url_base: str):
    """Create an invitation and queue its e-mail; the worker sends it."""
    invitation = Invitation.objects.create(
        organization=organization, email=email, role=role, invited_by=actor
    )
    audit.record(
        organization, actor, "member.invited", invitation, after={"email": email, "role": role}
    )
    url = accept_url_base + reverse("tenancy:accept_invitation", args=[invitation.token])
    transaction.on_commit(
        lambda: async_task("reconcile.tenancy.tasks.send_invitation", invitation.pk, url)
    )
    return invitation


@transaction.atomic
def revoke_invitation(invitation: Invitation, actor) -> None:
    audit.record(
        invitation.organization,
        actor,
        "invitation.revoked",
        invitation,
        before={"email": invitation.email, "role": invitation.role},
    )
    invitation.delete()


@transaction.atomic
def accept_invitation(invitation: Invitation, user) -> Membership:
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    membership, _ = Membership.objects.get_or_create(
        organization=invitation.organization, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    audit.record(
        invitation.organization,
        user,
        "member.joined",
        membership,
        after={"email": user.email, "role": membership.role, "invitation": invitation.pk},
    )
    return membership


def _guard_last_owner(membership: Membership) -> None:
    others = Membership.objects.filter(
        organization=membership.organization, role=Role.OWNER
    ).exclude(pk=membership.pk)
    if membership.role == Role.OWNER and not others.exists():
        raise LastOwnerError("The organization needs at least one owner.")


@transaction.atomic
def change_role(membership: Membership, role: str, actor) -> None:
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if role == membership.role:
        return
    if role != Role.OWNER:
        _guard_last_owner(membership)
    before = {"email": membership.user.email, "role": membership.role}
    membership.role = role
    membership.save(update_fields=["role"])
    audit.record(
        membership.organization,
        actor,
        "member.role_changed",
        membership,
        before=before,
        after={"email": membership.user.email, "role": role},
    )


@transaction.atomic
def remove_member(membership: Membership, actor) -> None:
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    _guard_last_owner(membership)
    audit.record(
        membership.organization,
        actor,
        "member.removed",
        membership,
        before={"email": membership.user.email, "role": membership.role},
    )
    membership.delete()
