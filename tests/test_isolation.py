"""Tenant isolation, generated from the URL conf: every view, as a member of another
organization, with real ids of the victim organization, by GET and by POST.

Each URL answers 403, 404 or 405 (or, for a page without an id, shows none of the victim's
data), and nothing of the victim organization changes. A new view is covered as soon as it is
routed; a new kind of URL argument fails here until it is given a victim object below.
"""

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from integrations.models import CsvProfile, CsvUpload, UserExclusion, VendorConnection
from psa.providers import PROVIDERS as PSA_PROVIDERS
from reconcile.mapping.models import AccountMapping, ServiceMapping
from reconcile.notifications.models import Notification
from reconcile.review.models import PushBatch, SeatDiscrepancy
from reconcile.tenancy.models import Invitation, Membership, Role
from tests.conftest import login
from tests.factories import (
    MembershipFactory,
    PSAConnectionFactory,
    SeatDiscrepancyFactory,
    SyncRunFactory,
    UsageSnapshotFactory,
    VendorConnectionFactory,
)

pytestmark = pytest.mark.django_db
VICTIM_NAME = "Victim Dental Group LLC"
# Public by design: the invitation token *is* the permission (checked in tests/tenancy).
PUBLIC = {"tenancy:accept_invitation", "login", "logout", "healthz", "tenancy:signup"}


def routes(patterns=None, prefix="", namespace=None):
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from routes(pattern.url_patterns, prefix, pattern.namespace or namespace)
        elif isinstance(pattern, URLPattern) and pattern.name:
            name = f"{namespace}:{pattern.name}" if namespace else pattern.name
            yield name, sorted(pattern.pattern.converters)


@pytest.fixture
def victim(db):
    owner = MembershipFactory(role=Role.OWNER, organization__name="Victim MSP").user
    organization = Membership.objects.get(user=owner).organization
    vendor = VendorConnectionFactory(organization=organization, description="Victim KnowBe4")
    usage = UsageSnapshotFactory(
        account__connection=vendor, account__name=VICTIM_NAME, service__connection=vendor
    )
    account, service = usage.account, usage.service
    card = SeatDiscrepancyFactory(
        line__container__connection=PSAConnectionFactory(organization=organization),
        line__container__company__name=VICTIM_NAME,
    )
    psa = card.line.connection
    AccountMapping.objects.create(
        organization=organization,
        vendor_account=account,
        psa_company=card.psa_company,
        state="mapped",
        source="manual",
    )
    service_mapping = ServiceMapping.objects.create(
        organization=organization,
        vendor_service=service,
        psa_product=card.psa_product,
        state="mapped",
        source="manual",
    )
    csv = VendorConnection.objects.create(
        organization=organization, kind="csv_upload", polling_interval=0
    )
    profile = CsvProfile.objects.create(
        organization=organization,
        connection=csv,
        name="Monthly",
        customer_column="Customer",
        quantity_column="Seats",
    )
    upload = CsvUpload.objects.create(
        organization=organization,
        connection=csv,
        profile=profile,
        file_name="usage.csv",
        encoding="utf-8",
        content=f"Customer,Seats\n{VICTIM_NAME},5\n",
        row_count=1,
    )
    exclusion = UserExclusion.objects.create(
        organization=organization, account=account, pattern="svc-*@victim.example"
    )
    batch = PushBatch.objects.create(organization=organization, created_by=owner)
    ids = {
        "organization_id": organization.pk,
        "membership_id": Membership.objects.get(user=owner).pk,
        "invitation_id": Invitation.objects.create(
            organization=organization, email="new@victim.example", role=Role.VIEWER
        ).pk,
        "account_id": account.pk,
        "service_id": service.pk,
        "mapping_id": service_mapping.pk,
        "card_id": card.pk,
        "batch_id": batch.pk,
        "run_id": SyncRunFactory(vendor_connection=vendor).pk,
        "upload_id": upload.pk,
        "exclusion_id": exclusion.pk,
        "notification_id": Notification.objects.create(
            organization=organization,
            user=owner,
            kind="sync_failed",
            subject=f"Sync of {VICTIM_NAME} failed",
            body="…",
            url="/",
            dedupe_key="victim",
        ).pk,
    }
    # connection_id means a different model per app.
    connections = {"psa": psa.pk, "csv": csv.pk, "vendor": vendor.pk}
    return organization, ids, connections


def arguments(name: str, converters: list[str], ids: dict, connections: dict) -> list[dict]:
    """The victim's ids for one route; several variants where `kind` picks the model."""
    kwargs = {}
    for converter in converters:
        if converter in ids:
            kwargs[converter] = ids[converter]
        elif converter not in ("connection_id", "kind"):
            raise AssertionError(f"{name}: give the isolation suite a victim `{converter}`")
    if "connection_id" not in converters:
        if "kind" in converters:  # psa:connect/<kind>: no object, the outsider's own org
            return [kwargs | {"kind": kind} for kind in PSA_PROVIDERS.kinds()]
        return [kwargs]
    if "kind" in converters:
        return [
            kwargs | {"kind": kind, "connection_id": connections[kind]}
            for kind in ("vendor", "psa")
        ]
    app = name.split(":")[0]
    kind = "psa" if app == "psa" else "csv" if name.startswith("integrations:csv") else "vendor"
    return [kwargs | {"connection_id": connections[kind]}]


def victim_state(organization) -> dict:
    """Every row of the victim organization, as plain values."""
    state = {}
    for model in apps.get_models():
        field_names = {field.name for field in model._meta.get_fields()}
        if "organization" in field_names:
            rows = model.objects.filter(organization=organization)
        else:
            continue
        state[model._meta.label] = sorted(map(repr, rows.values()))
    return state


POST_BODY = {"ids": [], "item": [], "name": "x", "reason": "x", "quantity": "1", "role": "viewer"}


def test_an_outsider_can_neither_see_nor_change_another_organization(victim, outsider, client):
    organization, ids, connections = victim
    POST_BODY["ids"] = [ids["card_id"]]
    POST_BODY["item"] = [ids["batch_id"]]
    login(client, outsider)
    before = victim_state(organization)
    checked = []
    for name, converters in routes():
        if name in PUBLIC:
            continue
        for kwargs in arguments(name, converters, ids, connections):
            url = reverse(name, kwargs=kwargs)
            for method in ("get", "post"):
                response = getattr(client, method)(url, POST_BODY if method == "post" else None)
                body = b"".join(response) if response.streaming else response.content
                if converters and any(c != "kind" for c in converters):
                    assert response.status_code in (403, 404, 405), (
                        f"{method.upper()} {url} ({name}) answered {response.status_code}"
                    )
                else:
                    assert response.status_code < 500, f"{method.upper()} {url}: 500"
                assert VICTIM_NAME.encode() not in body, f"{method.upper()} {url} leaks data"
                checked.append((method, url))
    assert victim_state(organization) == before
    assert len(checked) > 150  # every route, both methods
    assert SeatDiscrepancy.objects.get(pk=ids["card_id"]).decision == ""
    assert Notification.objects.get(pk=ids["notification_id"]).read_at is None
