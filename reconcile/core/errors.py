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
    """An answer longer than reconcile.core.http.MAX_ANSWER_BYTES: refused while it streamed in."""
