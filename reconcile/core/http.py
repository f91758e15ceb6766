"""The one place outside HTTP clients are built: timeouts, bounded retries, Retry-After.

Both the vendor clients (integrations) and the PSA adapters (psa) use `client()`, so every
call to the outside world retries the same way: 429 and 502/503/504 answers and network errors
are retried a bounded number of times with exponential back-off, honouring `Retry-After`, and
never waiting longer in total than TRUEUP_HTTP_MAX_RETRY_WAIT. When retries run out the last
answer is returned, and the caller turns it into a message a person can read.

Answers are bounded: a body longer than MAX_ANSWER_BYTES (32 MB) is refused while it streams
in, with `reconcile.core.errors.AnswerTooLarge` naming the API, before it is all in memory. The cap
is far above any real page (1,000 full ConnectWise companies are a few MB; 500 Reporting users
under 1 MB), so a 10 MB answer is still read and judged by what it holds; only an answer that
keeps coming (a proxy's log, a loop) is cut off.

A client may also be paced (`pace()`): requests wait for a slot of a pyrate-limiter Limiter
before they are sent, so a PSA with a request budget is never pushed into answering 429. One
Limiter is shared by every client of one adapter, retries included.
"""

import contextlib
import math
import threading
from decimal import Decimal
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from httpx_retries import Retry, RetryTransport
from pyrate_limiter import Duration, Limiter, Rate
from pyrate_limiter.extras.httpx_limiter import RateLimiterTransport

from reconcile.core.errors import (
    AnswerTooLarge,
    BadAnswer,
    CredentialRejected,
    ExternalAPIError,
    RateLimited,
    ServerFault,
    Unreachable,
    WriteRejected,
)

RETRY_STATUSES = (429, 502, 503, 504)
MAX_ANSWER_BYTES = 32 * 1024 * 1024


def retry_policy(*, retry_post: bool) -> Retry:
    """`retry_post` is for APIs where POST only reads (GraphQL queries, Autotask queries)."""
    methods = {"HEAD", "GET", "PUT", "DELETE", "OPTIONS", "PATCH"}
    if retry_post:
        methods.add("POST")
    return Retry(
        total=settings.TRUEUP_HTTP_RETRIES,
        allowed_methods=methods,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=0.5,
        backoff_jitter=0.5,
        respect_retry_after_header=True,
        max_backoff_wait=settings.TRUEUP_HTTP_MAX_RETRY_WAIT,
        total_timeout=settings.TRUEUP_HTTP_MAX_RETRY_WAIT,
    )


# The limiter counts a request when it leaves, the PSA when it arrives: later, and by a
# varying delay. Were TrueUp's minute exactly the PSA's, a request that arrived late would
# share the PSA's minute with the one `requests` later and be answered 429 (a Retry-After of
# at least a second). A window one second longer absorbs that jitter for 1/61 of the budget.
SLACK_MS = 1000


def per_minute(requests: int) -> list[Rate]:
    """At most `requests` in any minute (and a second), spread out: at most a 60th of them in
    any second."""
    minute = int(Duration.MINUTE) + SLACK_MS
    if requests < 60:
        return [Rate(1, math.ceil(minute / requests))]
    return [Rate(math.ceil(requests / 60), Duration.SECOND), Rate(requests, minute)]


def pace(rates: list[Rate] | None) -> Limiter | None:
    return Limiter(rates, buffer_ms=5) if rates else None


class BoundedTransport(httpx.BaseTransport):
    """Refuses answers longer than MAX_ANSWER_BYTES: at once by their Content-Length, else
    while the body streams in (so at most the cap is ever held)."""

    def __init__(self, transport: httpx.BaseTransport, api: str):
        self.transport = transport
        self.api = api

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.transport.handle_request(request)
        limit = MAX_ANSWER_BYTES
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            response.close()
            raise self.too_large(request, limit)
        response.stream = _BoundedStream(
            response.stream, limit, lambda: self.too_large(request, limit)
        )
        return response

    def too_large(self, request: httpx.Request, limit: int) -> AnswerTooLarge:
        host = urlsplit(str(request.url)).netloc
        return AnswerTooLarge(
            f"{self.api} at {host} sent an answer too large to be an API page (over "
            f"{limit / 1024 / 1024:g} MB) to {request.url.path}; TrueUp stopped reading it. "
            "The data of the last good import is unchanged."
        )

    def close(self) -> None:
        self.transport.close()


class _BoundedStream(httpx.SyncByteStream):
    def __init__(self, stream, limit: int, error):
        self.stream, self.limit, self.error = stream, limit, error

    def __iter__(self):
        received = 0
        for chunk in self.stream:
            received += len(chunk)
            if received > self.limit:
                raise self.error()
            yield chunk

    def close(self) -> None:
        close = getattr(self.stream, "close", None)
        if close:
            close()


def client_options(
    *, retry_post: bool = False, limiter: Limiter | None = None, api: str = "The API", **options
) -> dict:
    """Keyword arguments for `httpx.Client` (gql's HTTPXTransport passes them through); `api`
    names the API in errors raised here ("ConnectWise")."""
    sender = RateLimiterTransport(limiter) if limiter else httpx.HTTPTransport()
    retrying = RetryTransport(transport=sender, retry=retry_policy(retry_post=retry_post))
    return {
        "timeout": httpx.Timeout(settings.TRUEUP_HTTP_TIMEOUT, connect=10.0),
        "transport": BoundedTransport(retrying, api),
        "follow_redirects": False,
        "headers": {"User-Agent": "TrueUp/0.1 (+billing reconciliation)"}
        | options.pop("headers", {}),
        **options,
    }


def client(**options) -> httpx.Client:
    return httpx.Client(**client_options(**options))


# --- one outside API: sending and the translation of every failure ------------------------------


def host_of(url: str) -> str:
    """Host and path of a URL for messages, without the scheme."""
    parts = urlsplit(url)
    return (parts.netloc + parts.path.rstrip("/")) or url


class OutsideAPI:
    """One outside API as an adapter talks to it, and the one place its failures are put
    into words (healthchecks' `HttpTransport`, for APIs rather than webhooks).

    `send()` owns the HTTP call: every httpx error becomes one phrasing of `Unreachable`, and
    every answer of 300 or more one of `reconcile.core.errors` by `error()`: 429 after the
    retries, 401/403, 5xx, 3xx, "a web page, not the API", a write's 4xx as `WriteRejected`
    with the API's own words. A provider subclasses it and overrides only what is its own:
    `said()` (where its error bodies keep their text), `rejected()` (what a 401/403 means for
    its credentials), `special()` (statuses that mean something only there) and `hint` (what
    to check when it answers as something that is not the API).
    """

    name = "The API"
    hint = "Check the URL."

    def __init__(
        self,
        *,
        limiter: Limiter | None = None,
        slots: threading.BoundedSemaphore | None = None,
        location: str = "",
        **options,
    ):
        self.limiter = limiter
        # At most the connection's concurrency of requests in flight, whichever threads send
        # them (an import's steps and their pages at once): one semaphore per adapter.
        self.slots = slots or contextlib.nullcontext()
        # Where the API is, for messages ("api-na.myconnectwise.net/v2025_1"); else the host
        # that answered.
        self.location = location
        self.options = options
        self.requests = 0  # HTTP requests sent (retries not counted), for the sync report
        self._clients: dict[bool, httpx.Client] = {}
        # Requests may be sent from several threads at once (reconcile.core.parallel): the
        # clients are thread-safe; creating them and counting requests is done under a lock.
        self._lock = threading.Lock()

    def client(self, *, retry_post: bool = False) -> httpx.Client:
        """One client per retry policy for the API object's life (kept-alive connections):
        `retry_post` for POSTs that only read (queries, token requests)."""
        with self._lock:
            if retry_post not in self._clients:
                self._clients[retry_post] = client(
                    retry_post=retry_post, limiter=self.limiter, api=self.name, **self.options
                )
            return self._clients[retry_post]

    def close(self) -> None:
        for http_client in self._clients.values():
            http_client.close()
        self._clients.clear()

    def send(
        self, method: str, url: str, *, write: bool = False, retry_post: bool = False, **options
    ) -> httpx.Response:
        """One request; an answer of 300 or more raises `error()`'s exception."""
        response = self.transmit(method, url, retry_post=retry_post, **options)
        if response.status_code >= 300:
            raise self.error(response, write=write)
        return response

    def transmit(
        self, method: str, url: str, *, retry_post: bool = False, **options
    ) -> httpx.Response:
        """One request, whatever its status; only a failure to get an answer raises."""
        with self._lock:
            self.requests += 1
        try:
            with self.slots:
                return self.client(retry_post=retry_post).request(method, url, **options)
        except httpx.InvalidURL as error:
            raise Unreachable(f"The {self.name} URL {url} is not an http(s) address.") from error
        except httpx.RequestError as error:
            raise self.unreachable(error, url) from error

    def unreachable(self, error: httpx.RequestError, url: str) -> Unreachable:
        """The one phrasing of a request that got no answer (for clients that send by
        themselves too, such as gql's transport)."""
        where = self.location or urlsplit(url).netloc or url
        if isinstance(error, httpx.TimeoutException):
            return Unreachable(
                f"Could not reach {self.name} at {where}: no answer within "
                f"{settings.TRUEUP_HTTP_TIMEOUT:g} seconds."
            )
        if isinstance(error, httpx.UnsupportedProtocol):
            return Unreachable(f"The {self.name} URL {url} is not an http(s) address.")
        if isinstance(error, httpx.DecodingError):
            return Unreachable(
                f"Could not read the answer of {self.name} at {where}: its body could not be "
                f"decoded as it said it was encoded. {self.hint}"
            )
        return Unreachable(
            f"Could not reach {self.name} at {where}: the connection was refused or the "
            f"host is unknown. {self.hint}"
        )

    # --- answers ------------------------------------------------------------------------------

    @staticmethod
    def is_json(response: httpx.Response) -> bool:
        return "json" in response.headers.get("content-type", "").lower()

    def json(self, response: httpx.Response, *, exact: bool = False):
        """The body as JSON (`exact`: numbers with a fraction as Decimal, digit for digit)."""
        if not self.is_json(response):
            raise self.not_the_api(response)
        try:
            return response.json(parse_float=Decimal) if exact else response.json()
        except ValueError as error:
            raise BadAnswer(
                f"{self.where(response)} answered with broken JSON (HTTP {response.status_code})."
            ) from error

    def where(self, response: httpx.Response) -> str:
        """'ConnectWise at api-na.myconnectwise.net' (the host that answered)."""
        return f"{self.name} at {self.location or urlsplit(str(response.request.url)).netloc}"

    def not_the_api(self, response: httpx.Response) -> Unreachable:
        content_type = response.headers.get("content-type", "").lower()
        what = "a web page" if "html" in content_type else "something"
        return Unreachable(
            f"Could not reach {self.where(response)}: it answered with {what} (HTTP "
            f"{response.status_code}), not the API. {self.hint}"
        )

    def said(self, response: httpx.Response) -> str:
        """The API's own words in an error answer: common JSON shapes ("" when none)."""
        try:
            body = response.json()
        except ValueError:
            return ""
        if isinstance(body, str):
            return body.strip()[:500]
        if not isinstance(body, dict):
            return ""
        for name in ("error_description", "message", "Message", "error", "title"):
            if isinstance(body.get(name), str) and body[name].strip():
                return body[name].strip()[:500]
        errors = body.get("errors")
        if isinstance(errors, list):
            return " ".join(str(e.get("message", e) if isinstance(e, dict) else e) for e in errors)[
                :500
            ]
        return ""

    def rejected(self, response: httpx.Response) -> ExternalAPIError:
        """A 401 or 403: what it means for this API's credentials."""
        said = self.said(response)
        return CredentialRejected(
            f"{self.name} rejected the credentials (HTTP {response.status_code})"
            f"{': ' + said.rstrip('.') if said else ''}."
        )

    def special(self, response: httpx.Response, *, write: bool) -> ExternalAPIError | None:
        """A status only this API gives a meaning; None to fall through to the common rules."""
        return None

    def error(self, response: httpx.Response, *, write: bool = False) -> ExternalAPIError:
        """The one translation of an answer of 300 or more into a readable error."""
        status = response.status_code
        special = self.special(response, write=write)
        if special is not None:
            return special
        where = self.where(response)
        if status == 429:
            return RateLimited(
                f"{where} is rate limiting requests (HTTP 429) and kept doing so after "
                f"{settings.TRUEUP_HTTP_RETRIES} retries. Try again in a few minutes."
            )
        if status in (401, 403):
            return self.rejected(response)
        if 300 <= status < 400:
            return Unreachable(
                f"{where} redirected the request (HTTP {status}) to "
                f"{response.headers.get('Location', 'elsewhere')}. {self.hint}"
            )
        json_body = self.is_json(response) or not response.content
        if not json_body and not (write and 400 <= status < 500 and status != 404):
            return self.not_the_api(response)
        said = self.said(response)
        detail = f": {said.rstrip('.')}" if said else ""
        if write and 400 <= status < 500:
            return WriteRejected(
                f"{self.name} refused the change (HTTP {status}){detail or ': no reason given'}.",
                status_code=status,
                body=response.text,
            )
        if status >= 500:
            return ServerFault(f"{where} answered with a server error (HTTP {status}){detail}.")
        path = urlsplit(str(response.request.url)).path
        return BadAnswer(f"{where} answered HTTP {status} to {path}{detail}.")
