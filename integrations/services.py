"""Vendor connections' imported data: user exclusions, and storing an import."""

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
from reconcile.core.bulk import BATCH, insert_rows
from reconcile.core.imports import Import, ImportCounts, Step, Table
from reconcile.tenancy import audit

ACCOUNTS = Table(
    VendorAccount,
    [
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
    ],
)
STAGED_ACCOUNT_FIELDS = ["sync_run_id", "external_id", "change", *ACCOUNTS.fields]
STAGED_USAGE_FIELDS = [
    "sync_run_id",
    "external_id",
    "service_code",
    "active_users",
    "excluded_users",
    "seats",
]


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


class AccountImport(Import):
    """One import of a vendor connection's accounts, staged: each page is written to
    StagedAccount/StagedUsage as it arrives (so the database work overlaps the next page's
    HTTP request) and `finish()` merges the staged rows into the live tables with a few
    set-based statements; a failed import only leaves staged rows, which `discard()` drops.

    Usage snapshots are change points: written for every service of an account whose record
    changed (new, counts moved, another subscription level or add-ons), so the latest points of
    an account are its current services and history stays exact without a row per sync.

    Exclusions: `active_users` is stored as the *billable* count, the vendor's active users minus
    `excluded_users` (users matching the account's UserExclusion patterns, counted by adapters
    that see single users; None where none can). The vendor's raw count is their sum. A change
    of the excluded count alone is a change point like any other.
    """

    def __init__(self, connection: VendorConnection, sync_run_id: int):
        super().__init__(connection, sync_run_id)
        self.counts = ImportCounts()
        self.services: dict[str, str] = {}
        self.seen: set[str] = set()
        self.discard()
        self.existing = ACCOUNTS.snapshot({"connection": connection})

    def steps(self, adapter) -> list[Step]:
        return [Step("accounts", adapter.iter_account_pages(), self.stage)]

    def stage(self, records: list[AccountRecord]) -> None:
        accounts, usage = [], []
        for record in records:
            if record.external_id in self.seen:  # a page boundary moved while paging
                continue
            self.seen.add(record.external_id)
            values = ACCOUNTS.values(record, seats_purchased=record.seats)
            change = ACCOUNTS.change(self.existing, record.external_id, values)
            self.counts.count(change)
            accounts.append((self.sync_run_id, record.external_id, change, *values.values()))
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
    def finish(self) -> tuple[ImportCounts, list[str]]:
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
        counts = self.counts
        counts.removed = ACCOUNTS.mark_missing({"connection": connection}, now)
        self.discard()
        stored = counts.added + counts.updated + counts.unchanged
        return counts, [
            f"Stored {stored} accounts: {counts.added} added, {counts.updated} updated, "
            f"{counts.unchanged} unchanged, {counts.removed} no longer listed."
        ]

    def learnt(self, adapter) -> dict:
        """The API schema the adapter detected, when it is not the one stored."""
        schema = adapter.api_schema
        if not schema or schema == self.connection.api_schema:
            return {}
        return {"settings": self.connection.settings | {"api_schema": schema}}


def merge_statements(connection: VendorConnection, run_id: int, now) -> list[tuple[str, list]]:
    """The set-based SQL that moves one staged import into the live tables (PostgreSQL and
    SQLite share this syntax: INSERT ... SELECT ... ON CONFLICT DO UPDATE)."""
    account = VendorAccount._meta.db_table
    staged = StagedAccount._meta.db_table
    usage = StagedUsage._meta.db_table
    snapshot = UsageSnapshot._meta.db_table
    service = VendorService._meta.db_table
    at = db_connection.ops.adapt_datetimefield_value(now)
    columns = ", ".join(ACCOUNTS.fields)
    updates = ", ".join(f"{field} = excluded.{field}" for field in ACCOUNTS.fields)
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
