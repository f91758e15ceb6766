"""The one place outside HTTP clients are built: timeouts, bounded retries, Retry-After.

Both the vendor clients (integrations) and the PSA adapters (psa) use `client()`, so every
call to the outside world retries the same way: 429 and 502/503/504 answers and network errors
are retried a bounded number of times with exponential back-off, honouring `Retry-After`, and
never waiting longer in total than TRUEUP_HTTP_MAX_RETRY_WAIT. When retries run out the last
answer is returned, and the caller turns it into a message a person can read.

A client may also be paced (`pace()`): requests wait for a slot of a pyrate-limiter Limiter
before they are sent, so a PSA with a request budget is never pushed into answering 429. One
Limiter is shared by every client of one adapter, retries included.
"""

import math

import httpx
from django.conf import settings
from httpx_retries import Retry, RetryTransport
from pyrate_limiter import Duration, Limiter, Rate
from pyrate_limiter.extras.httpx_limiter import RateLimiterTransport

RETRY_STATUSES = (429, 502, 503, 504)


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


def client_options(*, retry_post: bool = False, limiter: Limiter | None = None, **options) -> dict:
    """Keyword arguments for `httpx.Client` (gql's HTTPXTransport passes them through)."""
    sender = RateLimiterTransport(limiter) if limiter else httpx.HTTPTransport()
    return {
        "timeout": httpx.Timeout(settings.TRUEUP_HTTP_TIMEOUT, connect=10.0),
        "transport": RetryTransport(transport=sender, retry=retry_policy(retry_post=retry_post)),
        "follow_redirects": False,
        "headers": {"User-Agent": "TrueUp/0.1 (+billing reconciliation)"}
        | options.pop("headers", {}),
        **options,
    }


def client(**options) -> httpx.Client:
    return httpx.Client(**client_options(**options))
