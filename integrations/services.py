"""Vendor connections and their imported data: connect, rotate, disconnect, store an import."""

from dataclasses import asdict, dataclass

from django.db import transaction
from django.utils import timezone

from integrations.adapters import AccountRecord
from integrations.models import UsageSnapshot, VendorAccount, VendorConnection, VendorService
from reconcile.tenancy import audit

ACCOUNT_FIELDS = [
    "name",
    "domain",
    "status",
    "billing_type",
    "seats_purchased",
    "active_users",
    "subscription_level",
    "subscription_end_date",
    "raw",
]
BATCH = 1000


@dataclass
class ImportCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@transaction.atomic
def connect(
    organization,
    actor,
    *,
    kind,
    region,
    base_url,
    credential,
    description="",
    expires_on=None,
    api_schema="",
) -> VendorConnection:
    connection = VendorConnection(
        organization=organization,
        kind=kind,
        region=region,
        base_url=base_url,
        description=description,
        credential_expires_on=expires_on,
        api_schema=api_schema,
        state=VendorConnection.State.PENDING,
    )
    connection.set_credential(credential)
    connection.save()
    audit.record(
        organization, actor, "connection.created", connection, after=connection.audit_fields()
    )
    return connection


@transaction.atomic
def rotate_credential(
    connection: VendorConnection, actor, credential: str, expires_on=None, api_schema: str = ""
) -> None:
    before = {
        "key_last4": connection.credential_last4,
        "expires_on": str(connection.credential_expires_on or ""),
    }
    connection.set_credential(credential)
    connection.credential_expires_on = expires_on
    connection.api_schema = api_schema or connection.api_schema
    connection.save(
        update_fields=[
            "credential_encrypted",
            "credential_last4",
            "credential_expires_on",
            "api_schema",
        ]
    )
    audit.record(
        connection.organization,
        actor,
        "connection.key_rotated",
        connection,
        before=before,
        after={"key_last4": connection.credential_last4, "expires_on": str(expires_on or "")},
    )


@transaction.atomic
def disconnect(connection: VendorConnection, actor) -> None:
    """Remove the credential and everything imported through it; the audit trail stays."""
    counts = {"accounts": connection.accounts.count(), "services": connection.services.count()}
    audit.record(
        connection.organization,
        actor,
        "connection.disconnected",
        connection,
        before=connection.audit_fields() | counts,
    )
    connection.delete()


def mark_succeeded(connection: VendorConnection, api_schema: str) -> None:
    VendorConnection.objects.filter(pk=connection.pk).update(
        state=VendorConnection.State.ACTIVE,
        last_success_at=timezone.now(),
        last_error="",
        api_schema=api_schema or connection.api_schema,
    )


def mark_failed(connection: VendorConnection, message: str) -> None:
    VendorConnection.objects.filter(pk=connection.pk).update(
        state=VendorConnection.State.ERROR, last_error_at=timezone.now(), last_error=message
    )


def _account_values(record: AccountRecord) -> dict:
    return {
        "name": record.name[:300],
        "domain": record.domain[:253],
        "status": record.status,
        "billing_type": record.billing_type[:16],
        "seats_purchased": record.seats,
        "active_users": record.active_users,
        "subscription_level": record.subscription_level[:100],
        "subscription_end_date": record.subscription_end_date,
        "raw": record.raw,
    }


@transaction.atomic
def store_import(
    connection: VendorConnection, records: list[AccountRecord], *, sync_run_id: int | None = None
) -> ImportCounts:
    """Write one complete import: upsert accounts and services, snapshot usage, mark vanished.

    Called only after every page was fetched, so a failed import never reaches the database.
    The number of queries grows with batches of BATCH rows, not with accounts.
    """
    now = timezone.now()
    organization_id = connection.organization_id
    counts = ImportCounts()
    existing = {
        account.external_id: account
        for account in VendorAccount.objects.filter(connection=connection).only(
            "id", "external_id", "missing_since", *ACCOUNT_FIELDS
        )
    }
    upserts, unchanged_ids = [], []
    for record in records:
        values = _account_values(record)
        current = existing.get(record.external_id)
        if current is None:
            counts.added += 1
        elif current.missing_since or any(getattr(current, f) != v for f, v in values.items()):
            counts.updated += 1
        else:
            counts.unchanged += 1
            unchanged_ids.append(current.pk)
            continue
        upserts.append(
            VendorAccount(
                organization_id=organization_id,
                connection=connection,
                external_id=record.external_id,
                first_seen_at=now,
                last_seen_at=now,
                missing_since=None,
                **values,
            )
        )
    VendorAccount.objects.bulk_create(
        upserts,
        batch_size=BATCH,
        update_conflicts=True,
        unique_fields=["connection", "external_id"],
        update_fields=[*ACCOUNT_FIELDS, "last_seen_at", "missing_since"],
    )
    for start in range(0, len(unchanged_ids), BATCH):
        VendorAccount.objects.filter(pk__in=unchanged_ids[start : start + BATCH]).update(
            last_seen_at=now
        )
    counts.removed = VendorAccount.objects.filter(
        connection=connection, missing_since__isnull=True, last_seen_at__lt=now
    ).update(missing_since=now)

    services = {}
    for record in records:
        for usage in record.usage:
            services.setdefault(usage.code, usage.name)
    VendorService.objects.bulk_create(
        [
            VendorService(
                organization_id=organization_id,
                connection=connection,
                code=code,
                name=name[:200],
                first_seen_at=now,
                last_seen_at=now,
            )
            for code, name in services.items()
        ],
        batch_size=BATCH,
        update_conflicts=True,
        unique_fields=["connection", "code"],
        update_fields=["name", "last_seen_at"],
    )
    service_ids = dict(connection.services.values_list("code", "id"))
    account_ids = dict(connection.accounts.values_list("external_id", "id"))
    UsageSnapshot.objects.bulk_create(
        [
            UsageSnapshot(
                organization_id=organization_id,
                account_id=account_ids[record.external_id],
                service_id=service_ids[usage.code],
                active_users=usage.active_users,
                seats=usage.seats,
                taken_at=now,
                sync_run_id=sync_run_id,
            )
            for record in records
            for usage in record.usage
        ],
        batch_size=BATCH,
    )
    return counts
