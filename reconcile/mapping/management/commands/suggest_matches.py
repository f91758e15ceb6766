"""`manage.py suggest_matches --vendor V.csv --psa P.csv --out OUT.csv`: what the matcher would do.

Inputs have a header with a `name` column (`id,name`); the output has one row per vendor name:
`vendor_name,psa_name,score,decision`, decision `auto`, `suggest` or `none`. No database rows.
Bad input ends with a one-line error and exit code 2.
"""

import csv
import io
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from reconcile.mapping.matching import match_names

MAX_INPUT_BYTES = 20 * 1024 * 1024


class Command(BaseCommand):
    help = "Score vendor account names against PSA company names from CSV files (id,name)."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--vendor", required=True, help="CSV of vendor accounts: id,name")
        parser.add_argument("--psa", required=True, help="CSV of PSA companies: id,name")
        parser.add_argument("--out", required=True, help="CSV written: one row per vendor name")

    def handle(self, *args, vendor, psa, out, **options):
        vendor_names = read_names(Path(vendor))
        psa_names = read_names(Path(psa))
        decisions = match_names(vendor_names, psa_names)
        try:
            with open(out, "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["vendor_name", "psa_name", "score", "decision"])
                for d in decisions:
                    score = "" if d.score is None else f"{d.score:.1f}"
                    writer.writerow([d.vendor_name, d.psa_name, score, d.decision])
        except OSError as e:
            raise fail(f"cannot write {out}: {e.strerror}") from e
        counts = {kind: sum(d.decision == kind for d in decisions) for kind in ("auto", "suggest")}
        self.stdout.write(
            f"{len(decisions)} vendor names: {counts['auto']} auto, {counts['suggest']} suggest, "
            f"{len(decisions) - counts['auto'] - counts['suggest']} none -> {out}"
        )


def fail(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def read_names(path: Path) -> list[str]:
    """The non-blank `name` values of a UTF-8 CSV file (a BOM is fine)."""
    try:
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise fail(f"{path}: {size:,} bytes is over the {MAX_INPUT_BYTES // 2**20} MB limit")
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise fail(f"cannot read {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise fail(f"{path}: not valid UTF-8 (byte {e.start})") from e
    if not text.strip():
        raise fail(f"{path}: the file is empty")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        field = next((f for f in reader.fieldnames or [] if f.strip() == "name"), None)
        if field is None:
            raise fail(f"{path}: no 'name' column in the header (expected id,name)")
        names = [(row[field] or "").strip() for row in reader]
    except csv.Error as e:
        raise fail(f"{path}: not a readable CSV file ({e})") from e
    return [name for name in names if name]
