"""Writing many imported rows: fast inserts for staging tables and set-wise upserts.

`insert_rows`: on PostgreSQL rows go in with COPY (no model instances, no per-value escaping in
Python); on other databases through bulk_create. The COPY is recorded in Django's query log.
"""

import json
from contextlib import nullcontext
from dataclasses import asdict, dataclass

from django.db import connection, models

BATCH = 1000


def insert_rows(model: type[models.Model], fields: list[str], rows: list[tuple]) -> None:
    if not rows:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(
            [model(**dict(zip(fields, row, strict=True))) for row in rows], batch_size=BATCH
        )
        return
    columns = [model._meta.get_field(name) for name in fields]
    json_positions = [i for i, field in enumerate(columns) if isinstance(field, models.JSONField)]
    sql = f"COPY {model._meta.db_table} ({', '.join(f.column for f in columns)}) FROM STDIN"
    with connection.cursor() as cursor:
        log = getattr(cursor, "debug_sql", None)  # set while queries are being logged
        with log(sql) if log else nullcontext(), cursor.cursor.copy(sql) as copy:
            for row in rows:
                if json_positions:
                    row = list(row)
                    for i in json_positions:
                        row[i] = json.dumps(row[i])
                copy.write_row(row)


def update_rows(model: type[models.Model], objects: list[models.Model], fields: list[str]):
    """Set `fields` of many existing rows (by primary key) to the objects' values.

    Django's bulk_update writes a CASE per field listing every row, and building it costs
    seconds of CPU for a thousand rows of a dozen fields. On PostgreSQL the same change goes
    as INSERT … ON CONFLICT (id) DO UPDATE with plain VALUES: every id exists, so no row is
    inserted. Other databases get bulk_update (SQLite would check the rows' other unique
    constraints as inserts)."""
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objects, fields, batch_size=BATCH)
        return
    model.objects.bulk_create(
        objects,
        batch_size=BATCH,
        update_conflicts=True,
        unique_fields=[model._meta.pk.name],
        update_fields=fields,
    )


@dataclass
class ImportCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def upsert_rows(model, scope: dict, rows: dict[str, dict], fields: list[str], now) -> ImportCounts:
    """Make `model`'s rows within `scope` (e.g. one connection) equal to `rows` (by external id).

    New and changed rows are upserted in batches, unchanged ones only get `last_seen_at`, and
    rows no longer listed get `missing_since` (kept, not deleted, so nothing pointing at them
    is lost). Queries grow with batches of BATCH rows. Call inside a transaction.
    """
    counts = ImportCounts()
    existing = {
        row[0]: row[1:]
        for row in model.objects.filter(**scope).values_list(
            "external_id", "missing_since", *fields
        )
    }
    upserts, unchanged = [], []
    for external_id, values in rows.items():
        current = existing.get(external_id)
        ordered = tuple(values[field] for field in fields)
        if current is None:
            counts.added += 1
        elif current[0] is not None or ordered != current[1:]:
            counts.updated += 1
        else:
            counts.unchanged += 1
            unchanged.append(external_id)
            continue
        upserts.append(
            model(
                **scope,
                external_id=external_id,
                first_seen_at=now,
                last_seen_at=now,
                missing_since=None,
                **values,
            )
        )
    model.objects.bulk_create(
        upserts,
        batch_size=BATCH,
        update_conflicts=True,
        unique_fields=[*scope_fields(scope), "external_id"],
        update_fields=[*fields, "last_seen_at", "missing_since"],
    )
    for start in range(0, len(unchanged), BATCH):
        model.objects.filter(**scope, external_id__in=unchanged[start : start + BATCH]).update(
            last_seen_at=now
        )
    counts.removed = model.objects.filter(
        **scope, missing_since__isnull=True, last_seen_at__lt=now
    ).update(missing_since=now)
    return counts


def scope_fields(scope: dict) -> list[str]:
    """The unique-key fields of a scope: {"connection_id": 3} -> ["connection"]."""
    return [name.removesuffix("_id") for name in scope if name != "organization_id"]
