"""The one place outside HTTP clients are built: timeouts, bounded retries, Retry-After.

Both the vendor clients (integrations) and the PSA adapters (psa) use `client()`, so every
call to the outside world retries the same way: 429 and 502/503/504 answers and network errors
are retried a bounded number of times with exponential back-off, honouring `Retry-After`, and
never waiting longer in total than TRUEUP_HTTP_MAX_RETRY_WAIT. When retries run out the last
answer is returned, and the caller turns it into a message a person can read.

Answers are bounded: a body longer than MAX_ANSWER_BYTES (32 MB) is refused while it streams
in, with `reconcile.errors.AnswerTooLarge` naming the API, before it is all in memory. The cap
is far above any real page (1,000 full ConnectWise companies are a few MB; 500 Reporting users
under 1 MB), so a 10 MB answer is still read and judged by what it holds; only an answer that
keeps coming (a proxy's log, a loop) is cut off.

A client may also be paced (`pace()`): requests wait for a slot of a pyrate-limiter Limiter
before they are sent, so a PSA with a request budget is never pushed into answering 429. One
Limiter is shared by every client of one adapter, retries included.
"""

import math
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from httpx_retries import Retry, RetryTransport
from pyrate_limiter import Duration, Limiter, Rate
from pyrate_limiter.extras.httpx_limiter import RateLimiterTransport

from reconcile.errors import AnswerTooLarge

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
