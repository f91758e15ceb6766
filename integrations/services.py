"""Vendor connections and their imported data: connect, rotate, disconnect, store an import."""

from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from integrations.adapters import AccountRecord
from integrations.models import (
    StagedAccount,
    StagedUsage,
    UsageSnapshot,
    UserExclusion,
    VendorAccount,
    VendorConnection,
    VendorService,
)
from reconcile.core.bulk import ImportCounts, insert_rows
from reconcile.core.signals import connection_deleted
from reconcile.tenancy import audit

ACCOUNT_FIELDS = [
    "name",
    "domain",
    "status",
    "billing_type",
    "seats_purchased",
    "active_users",
    "excluded_users",
    "subscription_level",
    "subscription_end_date",
    "raw",
]
STAGED_ACCOUNT_FIELDS = ["sync_run_id", "external_id", "change", *ACCOUNT_FIELDS]
STAGED_USAGE_FIELDS = [
    "sync_run_id",
    "external_id",
    "service_code",
    "active_users",
    "excluded_users",
    "seats",
]
BATCH = 1000


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
    **fields,
) -> VendorConnection:
    """Save a credential the caller already tested; `fields` are further model fields (the
    Reporting API's account name, a polling interval)."""
    connection = VendorConnection(
        organization=organization,
        kind=kind,
        region=region,
        base_url=base_url,
        description=description,
        credential_expires_on=expires_on,
        api_schema=api_schema,
        state=VendorConnection.State.PENDING,
        **fields,
    )
    connection.set_credential(credential)
    connection.save()
    audit.record(
        organization,
        actor,
        "connection.created",
        connection,
        after=connection.audit_fields() | {key: str(value) for key, value in fields.items()},
    )
    return connection


def connect_reporting(
    organization,
    actor,
    *,
    region,
    base_url,
    credential,
    account_name,
    description="",
    polling_interval,
) -> VendorConnection:
    """Save a KnowBe4 Reporting API key (one customer account), already tested by the caller."""
    return connect(
        organization,
        actor,
        kind="knowbe4_reporting",
        region=region,
        base_url=base_url,
        credential=credential,
        description=description,
        account_name=account_name,
        polling_interval=polling_interval,
    )


def exclusion_patterns(connection: VendorConnection) -> list[str]:
    """The UserExclusion patterns of the connection's accounts (what its adapter applies)."""
    return sorted(
        set(
            UserExclusion.objects.filter(account__connection=connection).values_list(
                "pattern", flat=True
            )
        )
    )


@transaction.atomic
def add_exclusion(account: VendorAccount, actor, pattern: str) -> UserExclusion:
    """Exclude the account's users matching `pattern` (already normalised) from the next sync."""
    exclusion = UserExclusion.objects.create(
        organization_id=account.organization_id,
        account=account,
        pattern=pattern,
        created_by=actor if actor and actor.is_authenticated else None,
    )
    audit.record(
        account.organization,
        actor,
        "exclusion.added",
        account,
        after={"pattern": pattern, "connection_id": account.connection_id},
    )
    return exclusion


@transaction.atomic
def remove_exclusion(exclusion: UserExclusion, actor) -> None:
    account = exclusion.account
    audit.record(
        account.organization,
        actor,
        "exclusion.removed",
        account,
        before={"pattern": exclusion.pattern, "connection_id": account.connection_id},
    )
    exclusion.delete()


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
    organization = connection.organization
    connection.delete()
    connection_deleted.send(sender=VendorConnection, organization=organization)


def _account_values(record: AccountRecord) -> dict:
    return {
        "name": record.name[:300],
        "domain": record.domain[:253],
        "status": record.status,
        "billing_type": record.billing_type[:16],
        "seats_purchased": record.seats,
        "active_users": record.active_users,
        "excluded_users": record.excluded_users,
        "subscription_level": record.subscription_level[:100],
        "subscription_end_date": record.subscription_end_date,
        "raw": record.raw,
    }


class AccountImport:
    """One import of a connection's accounts: `stage()` each page, then `finish()` or `discard()`.

    Staging writes each page to StagedAccount/StagedUsage as it arrives, so the database work
    overlaps the next page's HTTP request. `finish()` merges the staged rows into the live
    tables with a few set-based statements in one transaction; until then the last good
    import is untouched, and a failed import only leaves staged rows, which `discard()` drops.
    Usage snapshots are change points: written for every service of an account whose record
    changed (new, counts moved, another subscription level or add-ons), so the latest points of
    an account are its current services and history stays exact without a row per sync.

    Exclusions: `active_users` is stored as the *billable* count, the vendor's active users minus
    `excluded_users` (users matching the account's UserExclusion patterns, counted by adapters
    that see single users; None where none can). The vendor's raw count is their sum. A change
    of the excluded count alone is a change point like any other.
    """

    def __init__(self, connection: VendorConnection, sync_run_id: int):
        self.connection = connection
        self.sync_run_id = sync_run_id
        self.counts = ImportCounts()
        self.services: dict[str, str] = {}
        self.seen: set[str] = set()
        self.discard()
        self.existing = {
            row[0]: row[1:]
            for row in VendorAccount.objects.filter(connection=connection).values_list(
                "external_id", "missing_since", *ACCOUNT_FIELDS
            )
        }

    def stage(self, records: list[AccountRecord]) -> None:
        accounts, usage = [], []
        for record in records:
            if record.external_id in self.seen:  # a page boundary moved while paging
                continue
            self.seen.add(record.external_id)
            values = tuple(_account_values(record).values())
            current = self.existing.get(record.external_id)
            if current is None:
                change = "added"
            elif current[0] is not None or values != current[1:]:
                change = "updated"
            else:
                change = "unchanged"
            setattr(self.counts, change, getattr(self.counts, change) + 1)
            accounts.append((self.sync_run_id, record.external_id, change, *values))
            for service in record.usage:
                self.services.setdefault(service.code, service.name[:200])
                if change != "unchanged":  # counts, level or add-ons moved: a new point
                    usage.append(
                        (
                            self.sync_run_id,
                            record.external_id,
                            service.code,
                            service.active_users,
                            service.excluded_users,
                            service.seats,
                        )
                    )
        insert_rows(StagedAccount, STAGED_ACCOUNT_FIELDS, accounts)
        insert_rows(StagedUsage, STAGED_USAGE_FIELDS, usage)

    @transaction.atomic
    def discard(self) -> None:
        StagedAccount.objects.filter(sync_run_id=self.sync_run_id).delete()
        StagedUsage.objects.filter(sync_run_id=self.sync_run_id).delete()

    @transaction.atomic
    def finish(self) -> ImportCounts:
        now = timezone.now()
        connection = self.connection
        VendorService.objects.bulk_create(
            [
                VendorService(
                    organization_id=connection.organization_id,
                    connection=connection,
                    code=code,
                    name=name,
                    first_seen_at=now,
                    last_seen_at=now,
                )
                for code, name in self.services.items()
            ],
            batch_size=BATCH,
            update_conflicts=True,
            unique_fields=["connection", "code"],
            update_fields=["name", "last_seen_at"],
        )
        with db_connection.cursor() as cursor:
            for sql, params in merge_statements(connection, self.sync_run_id, now):
                cursor.execute(sql, params)
        self.counts.removed = VendorAccount.objects.filter(
            connection=connection, missing_since__isnull=True, last_seen_at__lt=now
        ).update(missing_since=now)
        self.discard()
        return self.counts


def merge_statements(connection: VendorConnection, run_id: int, now) -> list[tuple[str, list]]:
    """The set-based SQL that moves one staged import into the live tables (PostgreSQL and
    SQLite share this syntax: INSERT ... SELECT ... ON CONFLICT DO UPDATE)."""
    account = VendorAccount._meta.db_table
    staged = StagedAccount._meta.db_table
    usage = StagedUsage._meta.db_table
    snapshot = UsageSnapshot._meta.db_table
    service = VendorService._meta.db_table
    at = db_connection.ops.adapt_datetimefield_value(now)
    columns = ", ".join(ACCOUNT_FIELDS)
    updates = ", ".join(f"{field} = excluded.{field}" for field in ACCOUNT_FIELDS)
    return [
        (
            f"INSERT INTO {account} (organization_id, connection_id, external_id, {columns}, "
            f"first_seen_at, last_seen_at, missing_since) "
            f"SELECT %s, %s, external_id, {columns}, %s, %s, NULL FROM {staged} "
            f"WHERE sync_run_id = %s AND change <> 'unchanged' "
            f"ON CONFLICT (connection_id, external_id) DO UPDATE SET {updates}, "
            f"last_seen_at = excluded.last_seen_at, missing_since = NULL",
            [connection.organization_id, connection.pk, at, at, run_id],
        ),
        (
            f"UPDATE {account} SET last_seen_at = %s WHERE connection_id = %s AND external_id IN "
            f"(SELECT external_id FROM {staged} WHERE sync_run_id = %s AND change = 'unchanged')",
            [at, connection.pk, run_id],
        ),
        (
            f"UPDATE {snapshot} SET is_current = false WHERE is_current AND account_id IN "
            f"(SELECT a.id FROM {account} a JOIN {staged} s ON a.connection_id = %s "
            f"AND a.external_id = s.external_id WHERE s.sync_run_id = %s "
            f"AND s.change <> 'unchanged')",
            [connection.pk, run_id],
        ),
        (
            f"INSERT INTO {snapshot} (organization_id, account_id, service_id, active_users, "
            f"excluded_users, seats, taken_at, sync_run_id) "
            f"SELECT %s, a.id, s.id, u.active_users, u.excluded_users, u.seats, %s, %s "
            f"FROM {usage} u "
            f"JOIN {account} a ON a.connection_id = %s AND a.external_id = u.external_id "
            f"JOIN {service} s ON s.connection_id = %s AND s.code = u.service_code "
            f"WHERE u.sync_run_id = %s",
            [connection.organization_id, at, run_id, connection.pk, connection.pk, run_id],
        ),
    ]
