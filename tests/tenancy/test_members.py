import re

import pytest
from django.core import mail
from django.urls import reverse

from reconcile.tenancy.models import AuditEvent, Invitation, Membership, Role
from tests.conftest import login
from tests.factories import InvitationFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def invite(
    client, django_capture_on_commit_callbacks, email="new@acme-msp.example", role="billing"
):
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(reverse("tenancy:members"), {"email": email, "role": role})


def test_owner_invites_by_email_and_the_link_lets_a_new_user_join(
    owner_client, organization, django_capture_on_commit_callbacks
):
    response = invite(owner_client, django_capture_on_commit_callbacks)
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["new@acme-msp.example"]
    assert message.subject == "You are invited to Acme MSP on TrueUp"
    link = re.search(r"http://testserver(/invite/\S+/)", message.body).group(1)

    owner_client.logout()
    response = owner_client.get(link)
    assert "Choose a password for new@acme-msp.example" in response.content.decode()
    response = owner_client.post(
        link, {"password1": "another-pass-phrase-7", "password2": "another-pass-phrase-7"}
    )
    assert response.status_code == 302
    membership = Membership.objects.get(user__email="new@acme-msp.example")
    assert membership.organization == organization and membership.role == Role.BILLING
    assert Invitation.objects.get().accepted_at is not None
    assert owner_client.get(link).status_code == 410  # used once
    actions = list(AuditEvent.objects.values_list("action", flat=True).order_by("id"))
    assert actions == ["member.invited", "member.joined"]


def test_existing_user_accepts_after_signing_in(client, organization, outsider):
    invitation = InvitationFactory(organization=organization, email=outsider.email)
    login(client, outsider)
    response = client.post(reverse("tenancy:accept_invitation", args=[invitation.token]))
    assert response.status_code == 302
    assert Membership.objects.filter(user=outsider, organization=organization).exists()


def test_invitation_for_someone_else_is_not_accepted(client, organization, outsider):
    invitation = InvitationFactory(organization=organization, email="someone@else.example")
    login(client, outsider)
    response = client.post(reverse("tenancy:accept_invitation", args=[invitation.token]))
    assert "is for <strong>someone@else.example</strong>" in response.content.decode()
    assert not Membership.objects.filter(user=outsider, organization=organization).exists()


def test_inviting_an_existing_member_says_so(
    owner_client, owner, django_capture_on_commit_callbacks
):
    response = invite(owner_client, django_capture_on_commit_callbacks, email=owner.email)
    assert "member already" in response.content.decode()
    assert not Invitation.objects.exists()


def test_owner_changes_a_role_and_it_is_audited(owner_client, member_factory):
    finance = member_factory(Role.FINANCE)
    membership = finance.memberships.get()
    response = owner_client.post(
        reverse("tenancy:change_role", args=[membership.pk]), {"role": "viewer"}
    )
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.VIEWER
    event = AuditEvent.objects.get(action="member.role_changed")
    assert event.before == {"email": finance.email, "role": "finance"}
    assert event.after == {"email": finance.email, "role": "viewer"}


def test_the_last_owner_cannot_be_demoted_or_removed(owner_client, owner):
    membership = owner.memberships.get()
    owner_client.post(reverse("tenancy:change_role", args=[membership.pk]), {"role": "viewer"})
    response = owner_client.post(
        reverse("tenancy:remove_member", args=[membership.pk]), follow=True
    )
    assert "at least one owner" in response.content.decode()
    membership.refresh_from_db()
    assert membership.role == Role.OWNER
    assert not AuditEvent.objects.filter(
        action__in=["member.role_changed", "member.removed"]
    ).exists()


def test_owner_removes_a_member(owner_client, member_factory):
    viewer = member_factory(Role.VIEWER)
    owner_client.post(reverse("tenancy:remove_member", args=[viewer.memberships.get().pk]))
    assert not Membership.objects.filter(user=viewer).exists()
    assert AuditEvent.objects.get(action="member.removed").before["email"] == viewer.email


@pytest.mark.parametrize("role", [Role.BILLING, Role.FINANCE, Role.VIEWER])
def test_non_owners_cannot_manage_members(
    client, member_factory, owner, role, django_capture_on_commit_callbacks
):
    login(client, member_factory(role))
    owner_membership = owner.memberships.get()
    assert invite(client, django_capture_on_commit_callbacks).status_code == 403
    assert (
        client.post(
            reverse("tenancy:change_role", args=[owner_membership.pk]), {"role": "viewer"}
        ).status_code
        == 403
    )
    assert (
        client.post(reverse("tenancy:remove_member", args=[owner_membership.pk])).status_code == 403
    )
    assert client.get(reverse("tenancy:members")).status_code == 200  # reading is fine
    assert not Invitation.objects.exists() and not mail.outbox
    owner_membership.refresh_from_db()
    assert owner_membership.role == Role.OWNER


def test_owner_of_another_organization_gets_404_for_our_members(client, outsider, member_factory):
    viewer = member_factory(Role.VIEWER)
    login(client, outsider)
    membership = viewer.memberships.get()
    assert (
        client.post(
            reverse("tenancy:change_role", args=[membership.pk]), {"role": "owner"}
        ).status_code
        == 404
    )
    assert client.post(reverse("tenancy:remove_member", args=[membership.pk])).status_code == 404
    membership.refresh_from_db()
    assert membership.role == Role.VIEWER


def test_a_user_in_two_organizations_switches_between_them(client, organization, outsider):
    MembershipFactory(organization=organization, user=outsider, role=Role.VIEWER)
    login(client, outsider)
    assert "Other MSP" in client.get(reverse("home")).content.decode()
    client.post(reverse("tenancy:switch", args=[organization.pk]))
    assert "<h1>Acme MSP</h1>" in client.get(reverse("home")).content.decode()
