"""Reading a usage CSV: bytes to text, the header, and rows checked one by one.

Pure functions, no database: the upload view, the preview and the sync adapter all read a file
through `parse()`, so what the preview shows is exactly what the import stores.

Decisions (shown to people in the preview and the upload page's help):

- Encoding: a UTF-8 or UTF-16 byte order mark decides; otherwise the file is UTF-8 when it
  decodes as UTF-8, else Windows-1252 (what Excel writes as "CSV" on Windows). Anything else,
  an Excel workbook, or text with NUL characters is refused before anything is stored.
- Delimiter: a saved profile's, else the one of `,` `;` tab that the header line uses most
  (outside quotes). csv.Sniffer guesses from the data rows and is thrown by names such as
  "Acme, Inc." in a semicolon file; header lines are plain.
- Row numbers count the header as row 1, as a spreadsheet shows the file. Blank rows are
  skipped (and counted, so numbers still match the spreadsheet).
- Quantities are whole numbers of seats or units: digits only. "12.5" is refused (not a whole
  unit), and so is "1,234" or "1.234": in a `;` file written with a European locale "1,234"
  means one and a bit, in an English one a thousand and more; guessing could bill 1,000 times
  too much, so the file must say 1234. Negative numbers and values above what a count column
  holds are refused.
- A customer is its name with case and spacing ignored ("ACME  corp" is "Acme Corp"); a
  service is the slug of its name ("Backup (GB)" is "backup gb"). The same customer and
  service on two rows is an error naming the first row, never summed: a duplicated export
  line would otherwise double a bill.
- Any error blocks the whole import ("fix the file"): a half-right file never changes billing.
"""

import codecs
import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

DELIMITERS = {",": "Comma (,)", ";": "Semicolon (;)", "\t": "Tab"}
ENCODINGS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "utf-16": "UTF-16",
    "cp1252": "Windows-1252",
}
MAX_QUANTITY = 2_147_483_647  # the largest value a count column holds
MAX_CUSTOMER = 300  # VendorAccount.name
MAX_SERVICE = 200  # VendorService.name
WHOLE = re.compile(r"[0-9]+")
NEGATIVE = re.compile(r"-\s*[0-9]+(?:[.,][0-9]+)*")
GROUPED = re.compile(r"[0-9]{1,3}(?:[,.\u00a0\u202f' ][0-9]{3})+")
DECIMAL = re.compile(r"[0-9]*[.,][0-9]+")
NOT_SLUG = re.compile(r"[^a-z0-9]+")


class CsvRefused(Exception):
    """The file cannot be read at all; the message says why and what to do."""


@dataclass(frozen=True)
class Mapping:
    """Which column holds what (a CsvProfile without the database)."""

    customer: str
    quantity: str
    service: str = ""
    default_service: str = ""  # the service of every row when there is no service column
    delimiter: str = ","

    @classmethod
    def from_profile(cls, profile) -> "Mapping":
        return cls(
            customer=profile.customer_column,
            quantity=profile.quantity_column,
            service=profile.service_column,
            default_service=profile.default_service,
            delimiter=profile.delimiter,
        )


@dataclass
class Row:
    number: int
    customer: str
    service: str
    quantity: int
    customer_id: str
    service_code: str


@dataclass
class RowError:
    row: int | None  # None: the file as a whole
    column: str
    message: str


@dataclass
class ParseResult:
    rows: list[Row] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    row_count: int = 0  # data rows read, blank ones not counted

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not self.errors

    @property
    def customer_count(self) -> int:
        return len({row.customer_id for row in self.rows})

    @property
    def service_count(self) -> int:
        return len({row.service_code for row in self.rows})

    @property
    def total_quantity(self) -> int:
        return sum(row.quantity for row in self.rows)


def decode(data: bytes) -> tuple[str, str]:
    """The file's text and the encoding it was read with (a key of ENCODINGS)."""
    if data.startswith(b"PK\x03\x04"):
        raise CsvRefused(
            "This is an Excel workbook (.xlsx) or another zip file, not a CSV. In Excel choose "
            "File → Save As → “CSV UTF-8 (Comma delimited)” and upload that file."
        )
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise CsvRefused(
            "This is an Excel 97–2003 workbook (.xls), not a CSV. In Excel choose "
            "File → Save As → “CSV UTF-8 (Comma delimited)” and upload that file."
        )
    if data.startswith(codecs.BOM_UTF8):
        text, encoding = _strict(data[3:], "utf-8", "starts with a UTF-8 mark"), "utf-8-sig"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text, encoding = _strict(data, "utf-16", "starts with a UTF-16 mark"), "utf-16"
    else:
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            try:
                text, encoding = data.decode("cp1252"), "cp1252"
            except UnicodeDecodeError as error:
                raise CsvRefused(
                    f"The file is neither UTF-8 nor Windows-1252 text (byte {error.start + 1} "
                    "cannot be read). Save it as “CSV UTF-8” and upload it again."
                ) from None
    if "\x00" in text:
        raise CsvRefused(
            "The file contains NUL characters: it is not a text CSV file. Save it as "
            "“CSV UTF-8” and upload it again."
        )
    return text, encoding


def _strict(data: bytes, encoding: str, what: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise CsvRefused(
            f"The file {what} but byte {error.start + 1} is not valid {ENCODINGS[encoding]}. "
            "Save it as “CSV UTF-8” and upload it again."
        ) from None


def sniff_delimiter(text: str) -> str:
    """The delimiter of `,` `;` tab that the first non-blank line uses most outside quotes."""
    for line in text[:65536].splitlines():
        if line.strip():
            counts = dict.fromkeys(DELIMITERS, 0)
            quoted = False
            for char in line:
                if char == '"':
                    quoted = not quoted
                elif not quoted and char in counts:
                    counts[char] += 1
            best = max(counts, key=counts.get)
            return best if counts[best] else ","
    return ","


def _records(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(spreadsheet row number, fields) of every non-blank record; csv.Error becomes a refusal."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    number = 0
    try:
        for number, fields in enumerate(reader, start=1):
            if "".join(fields).strip():
                yield number, fields
    except csv.Error as error:
        raise CsvRefused(
            f'Row {number + 1} cannot be read ({error}); a quote (") is probably never closed.'
        ) from None


def header(text: str, delimiter: str) -> list[str]:
    """The column names of the file's first non-blank row, trimmed."""
    for _, fields in _records(text, delimiter):
        return [name.strip() for name in fields]
    return []


def sample(text: str, delimiter: str, rows: int = 5) -> list[list[str]]:
    """The first data rows, for the mapping page."""
    found = []
    for _, fields in _records(text, delimiter):
        found.append(fields)
        if len(found) > rows:
            break
    return found[1:]


def count_rows(text: str, delimiter: str) -> int:
    """Non-blank data rows (the header not counted)."""
    return max(sum(1 for _ in _records(text, delimiter)) - 1, 0)


def normal_key(name: str) -> str:
    """Names equal after casefolding and collapsing whitespace are one (column, customer)."""
    return " ".join(name.casefold().split())


def slug(text: str) -> str:
    """Lowercase ASCII words joined by "-" (django's slugify, without its lazy-string cost)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return NOT_SLUG.sub("-", ascii_text.lower()).strip("-")


def customer_id(key: str) -> str:
    """A stable external id (at most 64 characters) of a customer key: readable and unique."""
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    readable = slug(key)[:40].strip("-")
    return f"{readable}-{digest}" if readable else f"customer-{digest}"


def service_code(name: str) -> str:
    code = slug(name)[:90].strip("-")
    return code or "service-" + hashlib.sha1(normal_key(name).encode()).hexdigest()[:12]


def quantity_error(value: str) -> str:
    shown = value if len(value) <= 40 else value[:40] + "…"
    if NEGATIVE.fullmatch(value):
        return f"Negative quantity ({shown}): usage cannot be below zero."
    if GROUPED.fullmatch(value):
        return (
            f"“{shown}” has a thousands or decimal separator: write whole numbers without "
            f"separators ({re.sub(r'[^0-9]', '', value)}), so the number cannot be misread."
        )
    if DECIMAL.fullmatch(value):
        return f"“{shown}” is not a whole number: quantities are whole seats or units."
    return f"“{shown}” is not a number."


def parse(text: str, mapping: Mapping, *, max_rows: int | None = None) -> ParseResult:
    """Every data row checked: rows that are right, and an error for each problem found."""
    result = ParseResult()
    records = _records(text, mapping.delimiter)
    try:
        first = next(records, None)
        if first is None:
            result.errors.append(RowError(None, "", "The file is empty."))
            return result
        columns = _columns(first[1], mapping, sniff_delimiter(text), result)
        if result.errors:
            return result
        _rows(records, mapping, columns, result, max_rows)
    except CsvRefused as refusal:
        result.rows = []
        result.errors.append(RowError(None, "", str(refusal)))
    if not result.errors and not result.rows:
        result.errors.append(RowError(None, "", "The file has a header but no data rows."))
    return result


def _columns(
    names: list[str], mapping: Mapping, sniffed: str, result: ParseResult
) -> dict[str, tuple[int, str]]:
    """Position and header spelling of each mapped column, or file-level errors."""
    keys = [normal_key(name) for name in names]
    wanted = {"customer": mapping.customer, "quantity": mapping.quantity}
    if mapping.service:
        wanted["service"] = mapping.service
    elif not mapping.default_service.strip():
        result.errors.append(
            RowError(None, "", "The mapping names neither a service column nor a service name.")
        )
    positions = {}
    for role, column in wanted.items():
        found = [i for i, key in enumerate(keys) if key == normal_key(column)]
        if len(found) == 1:
            positions[role] = (found[0], names[found[0]])
        elif found:
            result.errors.append(
                RowError(None, column, f"The header names “{column}” {len(found)} times.")
            )
        else:
            present = ", ".join(f"“{name}”" for name in names if name.strip()) or "none"
            message = (
                f"The file has no column “{column}” (the {role} column). Its columns: {present}."
            )
            if sniffed != mapping.delimiter:
                message += (
                    f" The file seems separated by {DELIMITERS[sniffed].lower()}, the mapping "
                    f"expects {DELIMITERS[mapping.delimiter].lower()}: choose a new mapping."
                )
            result.errors.append(RowError(None, column, message))
    return positions


def _rows(records, mapping: Mapping, columns: dict, result: ParseResult, max_rows) -> None:
    (customer_at, customer_column), (quantity_at, quantity_column) = (
        columns["customer"],
        columns["quantity"],
    )
    service_at, service_column = columns.get("service", (None, ""))
    fixed_service = mapping.default_service.strip()
    ids: dict[str, str] = {}  # customer as written -> external id
    codes: dict[str, str] = {}  # service as written -> code
    seen: dict[tuple[str, str], int] = {}  # (external id, service code) -> first row number
    errors = result.errors

    for number, fields in records:
        result.row_count += 1
        if max_rows is not None and result.row_count > max_rows:
            raise CsvRefused(f"The file has more than {max_rows:,} data rows.")
        problems = len(errors)

        customer = _cell(fields, customer_at, customer_column, "customer name", number, errors)
        customer_ok = bool(customer) and _text_ok(
            customer, customer_column, MAX_CUSTOMER, number, errors
        )
        if service_at is None:
            service, service_ok = fixed_service, True
        else:
            service = _cell(fields, service_at, service_column, "service name", number, errors)
            service_ok = bool(service) and _text_ok(
                service, service_column, MAX_SERVICE, number, errors
            )

        raw = _cell(fields, quantity_at, quantity_column, "quantity", number, errors)
        quantity = 0
        if raw and not WHOLE.fullmatch(raw):
            errors.append(RowError(number, quantity_column, quantity_error(raw)))
        elif raw and (quantity := int(raw)) > MAX_QUANTITY:
            errors.append(
                RowError(number, quantity_column, f"{raw} is larger than a count can be.")
            )

        if not (customer_ok and service_ok):
            continue
        customer, service = " ".join(customer.split()), " ".join(service.split())
        external_id = ids.get(customer)
        if external_id is None:
            external_id = ids[customer] = customer_id(normal_key(customer))
        code = codes.get(service)
        if code is None:
            code = codes[service] = service_code(service)
        first = seen.setdefault((external_id, code), number)
        if first != number:
            errors.append(
                RowError(
                    number,
                    customer_column,
                    f"Duplicate of row {first}: {customer} · {service} is listed twice. Remove "
                    "one of the rows, or add their quantities up in one.",
                )
            )
        elif len(errors) == problems:
            result.rows.append(Row(number, customer, service, quantity, external_id, code))


def _cell(fields: list[str], at: int, column: str, what: str, number: int, errors: list) -> str:
    """The trimmed value at `at`, or "" with a "missing" error for the row."""
    value = fields[at].strip() if at < len(fields) else ""
    if not value:
        width = len(fields)
        short = (
            f" (the row has only {width} field{'s' if width != 1 else ''})" if at >= width else ""
        )
        errors.append(RowError(number, column, f"Missing {what}{short}."))
    return value


def _text_ok(value: str, column: str, longest: int, number: int, errors: list) -> bool:
    """A customer or service name that can be stored, else an error for the row."""
    if "\n" in value or "\r" in value:
        message = 'Contains a line break: a quote (") on this row is probably never closed.'
    elif len(value) > longest:
        message = f"Longer than {longest} characters."
    else:
        return True
    errors.append(RowError(number, column, message))
    return False
