import pytest
from django.urls import reverse

from reconcile.tenancy.models import Role
from tests.conftest import login

pytestmark = pytest.mark.django_db


def test_owner_browses_and_filters_the_activity(owner_client, member_factory):
    finance = member_factory(Role.FINANCE)
    owner_client.post(
        reverse("tenancy:change_role", args=[finance.memberships.get().pk]), {"role": "billing"}
    )
    page = owner_client.get(reverse("tenancy:activity")).content.decode()
    assert "member.role_changed" in page and "finance@acme-msp.example" in page

    filtered = owner_client.get(reverse("tenancy:activity"), {"action": "member.role_changed"})
    assert len(filtered.context["page"].object_list) == 1
    empty = owner_client.get(reverse("tenancy:activity"), {"actor": "nobody@"})
    assert "Nothing recorded for this filter" in empty.content.decode()
    bad = owner_client.get(reverse("tenancy:activity"), {"since": "yesterday"})
    assert bad.status_code == 200 and "Enter a valid date" in bad.content.decode()


def test_activity_is_for_owners_only(client, member_factory):
    login(client, member_factory(Role.FINANCE))
    assert client.get(reverse("tenancy:activity")).status_code == 403


def test_activity_shows_only_own_organization(client, owner_client, outsider, member_factory):
    member_factory(Role.VIEWER)
    owner_client.post(
        reverse("tenancy:remove_member", args=[member_factory(Role.BILLING).memberships.get().pk])
    )
    owner_client.logout()
    login(client, outsider)
    page = client.get(reverse("tenancy:activity")).content.decode()
    assert "member.removed" not in page and "acme-msp" not in page
