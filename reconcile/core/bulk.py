"""Writing many rows: fast inserts for staging tables and set-wise updates (reconcile.core.imports
merges imports with them).

`insert_rows`: on PostgreSQL rows go in with COPY (no model instances, no per-value escaping in
Python); on other databases through bulk_create. The COPY is recorded in Django's query log.
"""

import json
from contextlib import nullcontext

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
