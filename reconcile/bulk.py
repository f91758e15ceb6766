"""Loading many plain rows fast, for staging tables.

On PostgreSQL rows go in with COPY (no model instances, no per-value escaping in Python); on
other databases through bulk_create. The COPY is recorded in Django's query log like any query.
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
