"""The import engine both sides share: pages are held until every one arrived, then merged.

An import (`Import`) names its steps: a label, the adapter's pages, and what to do with each
page. The sync pipeline (reconcile.sync) fetches every page of every step, then calls
`finish()`, which merges everything set-wise in one transaction: new and changed rows are
upserted, unchanged rows only get `last_seen_at`, and rows no longer listed get
`missing_since` (kept, not deleted, so nothing pointing at them is lost). Until `finish()` the
live tables are untouched, so a failed import never overwrites or removes the last good data.

Pages are held one of two ways: buffered in memory (the PSA side, whose four tables point at
each other's ids) or staged in tables (the vendor side, whose pages carry usage rows and can
be large; each page is written as it arrives and merged with INSERT ... SELECT). Either way a
table's imported columns are declared once (`Table`), their lengths are the model's, and the
change of a row (added, updated, unchanged) is decided the same way.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from django.db import models

from reconcile.core.bulk import BATCH


@dataclass
class ImportCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    def count(self, change: str) -> None:
        setattr(self, change, getattr(self, change) + 1)


@dataclass
class Step:
    label: str  # "billing lines": what the run log calls its pages
    pages: Iterator  # of pages with `items`, `number` and `total_pages`
    add: Callable[[list], None]


class Table:
    """The columns an import writes into one model, declared once. The model has
    `external_id`, `first_seen_at`, `last_seen_at` and `missing_since`."""

    def __init__(self, model: type[models.Model], fields: list[str]):
        self.model = model
        self.fields = fields
        self.lengths = {
            name: field.max_length
            for name in fields
            if isinstance(field := model._meta.get_field(name), models.CharField)
        }

    def values(self, record, **computed) -> dict:
        """The row of `record`: each field from the record's attribute of that name unless
        given in `computed`, text cut to the model's length."""
        values = {
            name: computed[name] if name in computed else getattr(record, name)
            for name in self.fields
        }
        for name, length in self.lengths.items():
            if values[name] is not None:
                values[name] = values[name][:length]
        return values

    def snapshot(self, scope: dict) -> dict[str, tuple]:
        """external id -> (missing_since, *fields) of the rows within `scope` now."""
        rows = self.model.objects.filter(**scope).values_list(
            "external_id", "missing_since", *self.fields
        )
        return {row[0]: row[1:] for row in rows}

    def change(self, snapshot: dict, external_id: str, values: dict) -> str:
        """added, updated (also: listed again after it went missing) or unchanged."""
        current = snapshot.get(external_id)
        if current is None:
            return "added"
        if current[0] is not None or tuple(values[name] for name in self.fields) != current[1:]:
            return "updated"
        return "unchanged"

    def merge(self, scope: dict, rows: dict[str, dict], now) -> ImportCounts:
        """Make the rows within `scope` (one connection) equal to `rows` (by external id).
        Queries grow with batches of BATCH rows. Call inside a transaction."""
        counts = ImportCounts()
        snapshot = self.snapshot(scope)
        upserts, unchanged = [], []
        for external_id, values in rows.items():
            change = self.change(snapshot, external_id, values)
            counts.count(change)
            if change == "unchanged":
                unchanged.append(external_id)
                continue
            upserts.append(
                self.model(
                    **scope,
                    external_id=external_id,
                    first_seen_at=now,
                    last_seen_at=now,
                    missing_since=None,
                    **values,
                )
            )
        self.model.objects.bulk_create(
            upserts,
            batch_size=BATCH,
            update_conflicts=True,
            unique_fields=[*_scope_fields(scope), "external_id"],
            update_fields=[*self.fields, "last_seen_at", "missing_since"],
        )
        for start in range(0, len(unchanged), BATCH):
            batch = unchanged[start : start + BATCH]
            self.model.objects.filter(**scope, external_id__in=batch).update(last_seen_at=now)
        counts.removed = self.mark_missing(scope, now)
        return counts

    def mark_missing(self, scope: dict, now) -> int:
        """Rows this import did not list (not seen since `now`) are no longer listed."""
        return self.model.objects.filter(
            **scope, missing_since__isnull=True, last_seen_at__lt=now
        ).update(missing_since=now)


def _scope_fields(scope: dict) -> list[str]:
    """The unique-key fields of a scope: {"connection_id": 3} -> ["connection"]."""
    return [name.removesuffix("_id") for name in scope if name != "organization_id"]


class Import(ABC):
    """One import of one connection; each side's connection model names its subclass
    (`Connection.import_class`)."""

    def __init__(self, connection, sync_run_id: int):
        self.connection = connection
        self.sync_run_id = sync_run_id

    @abstractmethod
    def steps(self, adapter) -> list[Step]:
        """What to fetch, in order, and where each page goes."""

    @abstractmethod
    def finish(self) -> tuple[ImportCounts, list[str]]:
        """Merge what was held; the run's counts and the lines its log gets."""

    def discard(self) -> None:  # noqa: B027 - only staged imports hold anything to drop
        """Drop what was held (the import failed): nothing live was touched."""

    def learnt(self, adapter) -> dict:
        """Connection fields the import learnt from the API (`mark_succeeded`'s changes)."""
        return {}


def summary(label: str, counts: ImportCounts) -> str:
    return (
        f"{label}: {counts.added} added, {counts.updated} updated, "
        f"{counts.unchanged} unchanged, {counts.removed} no longer listed."
    )
