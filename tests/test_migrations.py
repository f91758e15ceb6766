"""A database made before the providers (kinds as choices, psa 0006 / integrations 0008, a
vendor key in its own column) upgrades with `migrate` and keeps every connection, its
credential (still decryptable, now in the one credential store), every imported row, mapping
and push."""

import json
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from reconcile.core import crypto

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [
    ("psa", "0006_company_keys_stale_index"),
    ("integrations", "0008_account_keys_stale_index"),
]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest() -> list[tuple[str, str]]:
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def test_old_rows_survive_the_upgrade():
    old = migrate([node for node in latest() if node[0] not in ("psa", "integrations")] + BEFORE)
    Organization = old.get_model("tenancy", "Organization")
    PSAConnection = old.get_model("psa", "PSAConnection")
    PSACompany = old.get_model("psa", "PSACompany")
    PSAProduct = old.get_model("psa", "PSAProduct")
    BillingContainer = old.get_model("psa", "BillingContainer")
    BillingLine = old.get_model("psa", "BillingLine")
    QuantityPush = old.get_model("psa", "QuantityPush")
    VendorConnection = old.get_model("integrations", "VendorConnection")
    VendorAccount = old.get_model("integrations", "VendorAccount")

    org = Organization.objects.create(name="Old MSP")
    secrets = {"company_id": "oldmsp", "public_key": "pub", "private_key": "priv4567"}
    psa = PSAConnection.objects.create(
        organization=org,
        kind="connectwise",
        settings={"site": "https://na.myconnectwise.net", "codebase": "v2025_1/"},
        secrets_encrypted=crypto.encrypt(json.dumps(secrets)),
        secret_hint="4567",
    )
    kinds = {}
    for kind in ("halo", "autotask"):
        kinds[kind] = PSAConnection.objects.create(
            organization=org, kind=kind, secrets_encrypted=crypto.encrypt("{}")
        ).pk
    company = PSACompany.objects.create(
        organization=org, connection=psa, external_id="19", name="Acme"
    )
    product = PSAProduct.objects.create(
        organization=org, connection=psa, external_id="7", identifier="KB4-DIA-U", name="Diamond"
    )
    container = BillingContainer.objects.create(
        organization=org, connection=psa, external_id="5", company=company, name="Acme MSA"
    )
    line = BillingLine.objects.create(
        organization=org,
        connection=psa,
        external_id="11",
        container=container,
        company=company,
        product=product,
        quantity=Decimal("25"),
    )
    QuantityPush.objects.create(
        organization=org,
        line=line,
        line_repr="Acme · Diamond",
        old_quantity=Decimal(25),
        requested_quantity=Decimal(30),
        outcome="confirmed",
    )
    vendor = VendorConnection.objects.create(
        organization=org,
        kind="knowbe4_partner",
        region="us",
        base_url="https://training.knowbe4.com/graphql",
        credential_encrypted=crypto.encrypt("kb4-partner-key-1234"),
        credential_last4="1234",
        api_schema="2023",
    )
    account = VendorAccount.objects.create(
        organization=org, connection=vendor, external_id="1001", name="Acme"
    )
    AccountMapping = old.get_model("mapping", "AccountMapping")
    AccountMapping.objects.create(
        organization=org,
        vendor_account=account,
        psa_company=company,
        state="mapped",
        source="manual",
    )

    new = migrate(latest())

    from integrations.models import VendorAccount as NewAccount
    from integrations.models import VendorConnection as NewVendor
    from psa.models import BillingLine as NewLine
    from psa.models import PSAConnection as NewPSA
    from psa.models import QuantityPush as NewPush

    assert new.get_model("psa", "PSAConnection")._meta.get_field("kind").choices is None
    upgraded = NewPSA.objects.get(pk=psa.pk)
    assert upgraded.secrets() == secrets and upgraded.kind_label == "ConnectWise PSA"
    assert type(upgraded.adapter()).__name__ == "ConnectWiseAdapter"
    assert {NewPSA.objects.get(pk=pk).kind for pk in kinds.values()} == set(kinds)
    assert NewLine.objects.get(pk=line.pk).quantity == Decimal(25)
    assert NewPush.objects.get(line_id=line.pk).requested_quantity == Decimal(30)
    vendor_now = NewVendor.objects.get(pk=vendor.pk)
    assert vendor_now.credential() == "kb4-partner-key-1234"
    # One credential store on both sides: where the key applies went into the settings.
    assert vendor_now.settings == {
        "region": "us",
        "base_url": "https://training.knowbe4.com/graphql",
        "api_schema": "2023",
    }
    assert vendor_now.secret_hint == "1234" and str(vendor_now).endswith("…1234")
    adapter = vendor_now.adapter()
    assert (adapter.base_url, adapter.credential, adapter.api_schema) == (
        "https://training.knowbe4.com/graphql",
        "kb4-partner-key-1234",
        "2023",
    )
    assert vendor_now.kind_label == "KnowBe4 Partner API"
    assert NewAccount.objects.filter(connection=vendor_now, external_id="1001").exists()
    from reconcile.mapping.models import AccountMapping as NewMapping

    assert NewMapping.objects.get(vendor_account_id=account.pk).psa_company_id == company.pk
