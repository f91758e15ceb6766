"""Readers of the fields every import needs, one behaviour for every API.

Adapters read answers through these, so a number, a date, an id or a name is judged the same
whether ConnectWise, Autotask, Halo, Syncro or KnowBe4 sent it: absent is None (or a default),
anything of the wrong shape is a `BadAnswer` naming the API and the field, never a silent 0.
Floats are read by their shortest repr (0.1 is 0.1, not 0.1000000000000000055…), and whole
numbers come back without a fraction (3.0 is 3).
"""

import datetime
from decimal import Decimal, InvalidOperation

from reconcile.core.errors import BadAnswer

MAX_ID_LENGTH = 64  # ImportedRow.external_id, VendorAccount.external_id
MAX_NAME_LENGTH = 300  # PSACompany.name, PSAProduct.name, VendorAccount.name


def excerpt(value, length: int = 60) -> str:
    """A short repr of a value from an answer, for a message (an answer may hold 10 MB)."""
    text = repr(value)
    return text if len(text) <= length else text[: length - 1] + "…"


def record_id(value, what: str) -> str:
    """A record's id as text: a JSON integer or a short string. `what` starts the message
    ("ConnectWise answered a company"); anything else is a BadAnswer."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip() and len(value.strip()) <= MAX_ID_LENGTH:
        return value.strip()
    if value is None or value == "":
        raise BadAnswer(f"{what} without an id.")
    raise BadAnswer(f"{what} whose id is not an id: {excerpt(value)}.")


def record_name(value, record: str, fix_in: str) -> str:
    """A company's, product's or account's name, stripped. `record` names it in the message
    ("ConnectWise company 250"), `fix_in` is where a person can correct it.

    A missing, null or empty name fails the import rather than being replaced by a placeholder
    or skipped: names are what mapping and the review go by, and a placeholder would rename a
    customer that was fine yesterday. So does a name that is not text, or one longer than any
    name (TrueUp keeps at most MAX_NAME_LENGTH characters)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadAnswer(
            f"{record} has no name. TrueUp matches customers and products by name, so the import "
            f"stopped: name it in {fix_in}, then import again."
        )
    if not isinstance(value, str):
        raise BadAnswer(f"{record} has a name that is not text: {excerpt(value)}.")
    name = value.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise BadAnswer(
            f"{record} has a name of {len(name):,} characters, which is no real name (TrueUp "
            f"keeps names of up to {MAX_NAME_LENGTH}): the answer is malformed."
        )
    return name


def unseen(records: list, seen: set, where: str) -> list[dict]:
    """The records of a page not seen on an earlier one (a page boundary that moved while
    paging repeats a record); `where` is "Halo's Client list"."""
    kept = []
    for record in records:
        if not isinstance(record, dict):
            raise BadAnswer(f"{where} holds {excerpt(record)}, no record.")
        identity = record_id(record.get("id"), f"{where} has a record")
        if identity not in seen:
            seen.add(identity)
            kept.append(record)
    return kept


def text(value) -> str:
    """An optional text field: the string, or "" for null, a missing field or a wrong type."""
    return value.strip() if isinstance(value, str) else ""


def obj(value, api: str, what: str) -> dict:
    """A JSON object ("ConnectWise answered an addition that is no object: 'x'.")."""
    if not isinstance(value, dict):
        raise BadAnswer(f"{api} answered {what} that is no object: {excerpt(value)}.")
    return value


def objects(value, api: str, what: str) -> list[dict]:
    """An optional JSON list of objects (a container's lines): [] when absent; items that are
    no object are left out."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadAnswer(f"{api} answered {what} that are no list: {excerpt(value)}.")
    return [item for item in value if isinstance(item, dict)]


def number(value, api: str, what: str = "a number") -> Decimal | None:
    """A JSON number or numeric string as an exact Decimal; None when absent (null or "")."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise BadAnswer(f"{api} sent {excerpt(value)} as {what}.")
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise BadAnswer(f"{api} sent {excerpt(value)} as {what}.") from None
    if not result.is_finite():
        raise BadAnswer(f"{api} sent {excerpt(value)} as {what}.")
    return result.quantize(Decimal(1)) if result == result.to_integral_value() else result


def date(
    value, api: str, what: str = "a date", *, none: tuple[str, ...] = ()
) -> datetime.date | None:
    """The date of an ISO date or date-time ("2026-11-01", "2026-11-01T00:00:00Z"), as the API
    wrote it (no time-zone conversion); None when absent or one of the API's `none` values."""
    if value is None or value == "" or (isinstance(value, str) and value.startswith(none or "\0")):
        return None
    if not isinstance(value, str):
        raise BadAnswer(f"{api} sent {excerpt(value)} as {what}.")
    try:
        return datetime.date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise BadAnswer(f"{api} sent {excerpt(value)} as {what}.") from None


def int_id(value, api: str, what: str) -> int:
    """An id the API wants back as a number ("ConnectWise agreement id must be a number")."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise BadAnswer(f"{api} {what} must be a number, not {excerpt(value)}.") from None


def json_number(quantity: Decimal) -> int | float:
    """A Decimal as a JSON number: an int when whole, else the nearest double."""
    quantity = Decimal(quantity)
    return int(quantity) if quantity == quantity.to_integral_value() else float(quantity)


def plain_json(value):
    """A record parsed with Decimal numbers, turned back into JSON numbers to store as JSON."""
    if isinstance(value, dict):
        return {key: plain_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_json(item) for item in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
