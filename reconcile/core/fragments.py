"""Keys for caching rendered fragments (review cards, mapping cards) by what they show."""

import hashlib

from django.db import models
from django.db.models import Aggregate, Func, TextField


def fingerprint(*items) -> str:
    """A digest of everything in `items` as loaded: each model row's field values, the rows
    loaded with it (select_related and prefetch_related) and plain values (tuples walked).

    A page renders its cards from exactly these rows, so the digest is the key of a card's
    HTML in the fragment cache: a change to any of them (a new tag, a renamed customer, a
    push's state) gives another key, and a card is never shown stale."""
    digest = hashlib.blake2b(digest_size=16)
    todo, seen = list(items), set()
    while todo:
        item = todo.pop()
        if isinstance(item, (list, tuple)):
            todo += item
        elif not isinstance(item, models.Model):
            digest.update(repr(item).encode())
        elif id(item) not in seen:  # a one-to-one row points back at its owner
            seen.add(id(item))
            values = {k: v for k, v in vars(item).items() if not k.startswith("_")}
            digest.update(repr((item._meta.label, sorted(values.items()))).encode())
            # Django keeps select_related rows in _state.fields_cache, prefetched ones apart.
            todo += [row for row in item._state.fields_cache.values() if row is not None]
            for rows in getattr(item, "_prefetched_objects_cache", {}).values():
                todo += rows
    return digest.hexdigest()


class RowDigest(Func):
    """A digest of its columns' values, computed by the database: the md5 of the row's text
    on PostgreSQL; elsewhere the quoted values joined (the caller hashes what it gets)."""

    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler, connection, template="md5(ROW(%(expressions)s)::text)", **extra
        )

    def as_sqlite(self, compiler, connection, **extra):
        parts, params = [], []
        for expression in self.get_source_expressions():
            sql, values = compiler.compile(expression)
            parts.append(f"quote({sql})")
            params += values
        return " || ',' || ".join(parts), params


class RowsDigest(Aggregate):
    """A digest of its columns over every row of the query (each row's text, joined).
    Rows in another order give another digest: a needless cache miss, never a wrong hit."""

    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler,
            connection,
            template="md5(string_agg(ROW(%(expressions)s)::text, ''))",
            **extra,
        )

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = RowDigest(*self.get_source_expressions()).as_sqlite(compiler, connection)
        return f"group_concat({sql}, ';')", params
