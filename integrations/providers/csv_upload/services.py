"""CSV usage connections: create one, receive a file, map its columns, preview, confirm, discard.

Nothing of a file reaches the accounts, services and usage until a person confirms a preview
without errors; confirming queues an ordinary sync, whose adapter (adapter.py) reads the
confirmed file, so the import is staged and merged like any other connection's: all or nothing,
and customers missing from this month's file are marked no longer listed.
"""

from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from integrations.models import CsvProfile, CsvUpload, VendorAccount, VendorConnection
from integrations.providers.csv_upload import parser
from integrations.providers.csv_upload.parser import CsvRefused, Mapping, ParseResult
from reconcile.core.connections import PollingInterval
from reconcile.core.signals import request_sync
from reconcile.tenancy import audit

RUNNING = "running"  # reconcile.sync's SyncRun.State.RUNNING (the sync app sits above this one)


@transaction.atomic
def create_connection(organization, actor, description: str) -> VendorConnection:
    """A connection without credential or URL. Synced only when a file is confirmed: a
    schedule would only read the same file again."""
    connection = VendorConnection.objects.create(
        organization=organization,
        kind="csv_upload",
        description=description,
        state=VendorConnection.State.PENDING,
        polling_interval=PollingInterval.DISABLED,
    )
    audit.record(
        organization, actor, "connection.created", connection, after=connection.audit_fields()
    )
    return connection


def read_file(uploaded_file) -> tuple[str, str]:
    """The text and encoding of an uploaded file, or CsvRefused (too large, not text)."""
    limit = settings.TRUEUP_CSV_MAX_BYTES
    if uploaded_file.size > limit:
        raise CsvRefused(
            f"The file is {_megabytes(uploaded_file.size)}; at most {_megabytes(limit)} can be "
            "uploaded. Remove columns the import does not need, or ask whoever runs TrueUp "
            "to raise TRUEUP_CSV_MAX_BYTES."
        )
    uploaded_file.seek(0)
    return parser.decode(uploaded_file.read())


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def receive(connection: VendorConnection, actor, uploaded_file, profile=None) -> CsvUpload:
    """Keep an uploaded file for its preview (nothing is imported), or CsvRefused when it
    cannot be read or has more rows than TRUEUP_CSV_MAX_ROWS. Earlier unconfirmed previews of
    the connection are discarded: the newest file is the one to check."""
    text, encoding = read_file(uploaded_file)
    delimiter = profile.delimiter if profile else parser.sniff_delimiter(text)
    if not text.strip():
        raise CsvRefused("The file is empty.")
    rows = parser.count_rows(text, delimiter)
    limit = settings.TRUEUP_CSV_MAX_ROWS
    if rows > limit:
        raise CsvRefused(
            f"The file has {rows:,} data rows; TrueUp imports at most {limit:,} from one file. "
            "Nothing was stored. Each file replaces the previous one in full, so it cannot be "
            "imported in parts: upload one file per service to separate CSV connections, or "
            "ask whoever runs TrueUp to raise TRUEUP_CSV_MAX_ROWS."
        )
    if rows == 0:
        raise CsvRefused("The file has a header but no data rows.")
    upload = CsvUpload(
        organization_id=connection.organization_id,
        connection=connection,
        profile=profile,
        file_name=(uploaded_file.name or "upload.csv")[:255],
        encoding=encoding,
        content=text,
        row_count=rows,
        created_by=actor,
    )
    if profile:
        _count(upload)
    with transaction.atomic():
        CsvUpload.objects.filter(connection=connection, state=CsvUpload.State.PREVIEW).update(
            state=CsvUpload.State.DISCARDED, content=""
        )
        upload.save()
        audit.record(
            connection.organization,
            actor,
            "csv_upload.received",
            upload,
            after=_audit_fields(upload),
        )
    return upload


def _audit_fields(upload: CsvUpload) -> dict:
    return {
        "connection": upload.connection_id,
        "file_name": upload.file_name,
        "encoding": upload.encoding,
        "rows": upload.row_count,
        "errors": upload.error_count,
        "profile": upload.profile.name if upload.profile else "",
        "state": upload.state,
    }


def _count(upload: CsvUpload) -> ParseResult:
    result = parse(upload)
    upload.row_count = result.row_count
    upload.error_count = len(result.errors)
    return result


def parse(upload: CsvUpload) -> ParseResult:
    return parser.parse(
        upload.content,
        Mapping.from_profile(upload.profile),
        max_rows=settings.TRUEUP_CSV_MAX_ROWS,
    )


PROFILE_FIELDS = [
    "customer_column",
    "service_column",
    "default_service",
    "quantity_column",
    "delimiter",
]


@transaction.atomic
def save_profile(upload: CsvUpload, actor, *, name: str, **columns) -> CsvProfile:
    """Save the mapping as a named profile of the connection (the same name replaces it) and
    read the upload with it."""
    connection = upload.connection
    profile = CsvProfile.objects.filter(connection=connection, name=name).first()
    before = {field: getattr(profile, field) for field in PROFILE_FIELDS} if profile else None
    if profile is None:
        profile = CsvProfile(
            organization_id=connection.organization_id,
            connection=connection,
            name=name,
            created_by=actor,
        )
    for field_name in PROFILE_FIELDS:
        setattr(profile, field_name, columns.get(field_name, ""))
    profile.save()
    audit.record(
        connection.organization,
        actor,
        "csv_profile.updated" if before else "csv_profile.created",
        profile,
        before=before,
        after={field: getattr(profile, field) for field in PROFILE_FIELDS},
    )
    upload.profile = profile
    _count(upload)
    upload.save(update_fields=["profile", "row_count", "error_count"])
    return profile


@dataclass
class Preview:
    """A parsed upload and what confirming it would change against the current import."""

    upload: CsvUpload
    result: ParseResult
    new_customers: int = 0
    changed_customers: int = 0
    no_longer_listed: list[str] = field(default_factory=list)
    first_import: bool = True


def preview(upload: CsvUpload) -> Preview:
    result = parse(upload)
    found = Preview(upload=upload, result=result)
    if not result.ok:
        return found
    in_file: dict[str, dict[str, int]] = {}
    for row in result.rows:
        in_file.setdefault(row.customer_id, {})[row.service_code] = row.quantity
    current = VendorAccount.objects.filter(connection=upload.connection, missing_since=None)
    listed = set()
    for external_id, name, raw in current.values_list("external_id", "name", "raw"):
        listed.add(external_id)
        quantities = in_file.get(external_id)
        if quantities is None:
            found.no_longer_listed.append(name)
        elif quantities != (raw or {}).get("quantities"):
            found.changed_customers += 1
    found.first_import = not listed
    found.new_customers = len(in_file.keys() - listed)
    found.no_longer_listed.sort(key=str.casefold)
    return found


def confirm(upload: CsvUpload, actor):
    """Mark a preview without errors as the connection's file and queue its import; returns
    the SyncRun. CsvRefused when the file has errors or an import is running now (it would
    read the previous file)."""
    result = parse(upload)
    if not result.ok:
        raise CsvRefused(
            f"The file has {len(result.errors):,} error{'s' if len(result.errors) != 1 else ''}: "
            "fix them in the file and upload it again. Nothing was imported."
        )
    connection = upload.connection
    if connection.sync_runs.filter(state=RUNNING).exists():
        raise CsvRefused(
            "An import of this connection is running now. Confirm again when it has finished."
        )
    with transaction.atomic():
        confirmed = CsvUpload.objects.filter(pk=upload.pk, state=CsvUpload.State.PREVIEW).update(
            state=CsvUpload.State.IMPORTED,
            imported_at=timezone.now(),
            row_count=result.row_count,
            error_count=0,
        )
        if not confirmed:
            raise CsvRefused("This file was already confirmed or discarded.")
        upload.refresh_from_db()
        # The previous file is superseded: only the latest confirmed one is ever read again.
        CsvUpload.objects.filter(connection=connection, state=CsvUpload.State.IMPORTED).exclude(
            pk=upload.pk
        ).update(content="")
        audit.record(
            connection.organization,
            actor,
            "csv_upload.confirmed",
            upload,
            after=_audit_fields(upload)
            | {"customers": result.customer_count, "services": result.service_count},
        )
        return request_sync(connection, trigger="manual", actor=actor)


@transaction.atomic
def discard(upload: CsvUpload, actor) -> bool:
    discarded = CsvUpload.objects.filter(pk=upload.pk, state=CsvUpload.State.PREVIEW).update(
        state=CsvUpload.State.DISCARDED, content=""
    )
    if discarded:
        upload.state = CsvUpload.State.DISCARDED
        audit.record(
            upload.connection.organization,
            actor,
            "csv_upload.discarded",
            upload,
            after=_audit_fields(upload),
        )
    return bool(discarded)
