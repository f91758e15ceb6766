"""Errors of calls to outside APIs (vendors and PSAs); `str(error)` is shown to people.

Adapters raise these; views and the sync pipeline show the message and never a traceback.
"""


class ExternalAPIError(Exception):
    """An outside API call failed."""


class CredentialRejected(ExternalAPIError):
    """401/403: the key or secret is wrong, expired, revoked, or for another region/zone."""


class Unreachable(ExternalAPIError):
    """No answer, or an answer that is not the API (an HTML page, a wrong host)."""


class RateLimited(ExternalAPIError):
    """Still 429 after the bounded retries."""


class ServerFault(ExternalAPIError):
    """The API answered with a server error (5xx)."""


class BadAnswer(ExternalAPIError):
    """The API answered, but not with what it documents (or our request was refused as bad)."""


class WriteRejected(ExternalAPIError):
    """The API refused a write; carries its status code and an excerpt of its answer."""

    def __init__(self, message: str, status_code: int | None = None, body: str = ""):
        super().__init__(message)
        self.status_code = status_code
        self.body = body[:2000]


class AnswerTooLarge(BadAnswer):
    """An answer longer than reconcile.http.MAX_ANSWER_BYTES: refused while it streamed in."""


# --- the fields every import needs, checked the same way for every API ---------------------------

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


def text(value) -> str:
    """An optional text field: the string, or "" for null, a missing field or a wrong type."""
    return value.strip() if isinstance(value, str) else ""
