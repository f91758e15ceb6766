"""Every view, as an owner, a member without the owner role, and an outsider of another
organization: owners may act, members may read, outsiders get 404 for any object id."""

import pytest
from django.urls import reverse

from reconcile.tenancy.models import Role
from tests.conftest import login
from tests.factories import (
    InvitationFactory,
    MembershipFactory,
    SyncRunFactory,
    VendorAccountFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(organization, owner):
    account = VendorAccountFactory(connection__organization=organization)
    return {
        "connection": account.connection.pk,
        "run": SyncRunFactory(vendor_connection=account.connection).pk,
        "membership": MembershipFactory(organization=organization, role=Role.VIEWER).pk,
        "invitation": InvitationFactory(organization=organization).pk,
    }


# (url name, object kind for the id or None, member's GET status, owner-only)
PAGES = [
    ("home", None),
    ("integrations", None),
    ("tenancy:members", None),
    ("tenancy:settings", None),
    ("integrations:detail", "connection"),
    ("integrations:accounts", "connection"),
    ("sync:connection_status", "connection"),
    ("sync:run_detail", "run"),
    ("sync:status", None),
]
OWNER_PAGES = [
    ("integrations:connect_knowbe4", None),
    ("integrations:rotate", "connection"),
    ("integrations:disconnect", "connection"),
    ("tenancy:activity", None),
]
OBJECT_POSTS = [
    ("integrations:rotate", "connection"),
    ("integrations:disconnect", "connection"),
    ("sync:sync_now", "connection"),
    ("sync:schedule", "connection"),
    ("tenancy:change_role", "membership"),
    ("tenancy:remove_member", "membership"),
    ("tenancy:revoke_invitation", "invitation"),
]


def url(name, kind, objects):
    args = [objects[kind]] if kind else []
    if name.startswith("sync:") and kind == "connection":
        args = ["vendor", *args]
    return reverse(name, args=args)


@pytest.mark.parametrize("name, kind", PAGES + OWNER_PAGES)
def test_owner_sees_every_page(client, owner, objects, name, kind):
    login(client, owner)
    assert client.get(url(name, kind, objects)).status_code == 200


@pytest.mark.parametrize("role", [Role.BILLING, Role.FINANCE, Role.VIEWER])
def test_members_read_pages_but_not_owner_pages(client, member_factory, objects, role):
    login(client, member_factory(role))
    for name, kind in PAGES:
        assert client.get(url(name, kind, objects)).status_code == 200, name
    for name, kind in OWNER_PAGES:
        assert client.get(url(name, kind, objects)).status_code == 403, name
    for name, kind in OBJECT_POSTS:
        assert client.post(url(name, kind, objects), {"role": "owner"}).status_code == 403, name


@pytest.mark.parametrize("name, kind", [p for p in PAGES + OWNER_PAGES if p[1]])
def test_outsider_gets_404_for_every_object_page(client, outsider, objects, name, kind):
    login(client, outsider)
    assert client.get(url(name, kind, objects)).status_code == 404


@pytest.mark.parametrize("name, kind", OBJECT_POSTS)
def test_outsider_posts_change_nothing(client, outsider, objects, organization, name, kind):
    login(client, outsider)
    before = organization.audit_events.count()
    response = client.post(
        url(name, kind, objects), {"role": "owner", "confirm": "on", "api_key": "x" * 40}
    )
    assert response.status_code == 404
    assert organization.audit_events.count() == before
