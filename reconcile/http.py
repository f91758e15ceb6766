"""The one place outside HTTP clients are built: timeouts, bounded retries, Retry-After.

Both the vendor clients (integrations) and the PSA adapters (psa) use `client()`, so every
call to the outside world retries the same way: 429 and 502/503/504 answers and network errors
are retried a bounded number of times with exponential back-off, honouring `Retry-After`, and
never waiting longer in total than TRUEUP_HTTP_MAX_RETRY_WAIT. When retries run out the last
answer is returned, and the caller turns it into a message a person can read.
"""

import httpx
from django.conf import settings
from httpx_retries import Retry, RetryTransport

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


def client_options(*, retry_post: bool = False, **options) -> dict:
    """Keyword arguments for `httpx.Client` (gql's HTTPXTransport passes them through)."""
    return {
        "timeout": httpx.Timeout(settings.TRUEUP_HTTP_TIMEOUT, connect=10.0),
        "transport": RetryTransport(retry=retry_policy(retry_post=retry_post)),
        "follow_redirects": False,
        "headers": {"User-Agent": "TrueUp/0.1 (+billing reconciliation)"}
        | options.pop("headers", {}),
        **options,
    }


def client(**options) -> httpx.Client:
    return httpx.Client(**client_options(**options))
