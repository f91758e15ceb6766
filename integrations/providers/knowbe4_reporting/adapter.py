"""KnowBe4 Reporting API adapter: one customer account per key, with its seats and active users.

For MSPs that are not on the partner plan: each customer account has its own Reporting API key
(../shared/research/knowbe4-api.md 2.1), on one of five sites (`https://{us|eu|ca|uk|de}.api.
knowbe4.com`, settings.KNOWBE4_REPORTING_URLS). A sync is

- `GET /v1/account`: name, type, `subscription_level`, `subscription_end_date`,
  `number_of_seats`; the three subscription keys are missing on trial accounts (2.3), so seats
  stay unknown (None), never zero;
- `GET /v1/users?status=active&per_page=500&page=N` until a short or empty page (2.4, 2.5),
  counting unique active users (each record is checked too: `status == "active"`, no
  `archived_at`). Users whose e-mail matches one of the account's exclusion patterns
  (integrations.exclusions) are counted apart: the record's `active_users` is the billable
  count, `excluded_users` the rest.

Limits (2.6): 4 requests per second, 50 per minute, 2,000 + licensed seats per day, per key;
a refusal is a 429 without Retry-After or any rate-limit header. The client therefore spaces
its own requests under pyrate-limiter (at most 4 in any 1,050 ms and 50 in any 61 s: windows a
little longer than the API's, because the limiter counts a request when it leaves and KnowBe4
when it arrives) rather than waiting for 429s. A 429 that happens anyway (another tool using
the same key) is retried here, not by httpx-retries, with a back-off of 1, 2, 4 … seconds
within TRUEUP_HTTP_MAX_RETRY_WAIT. The daily cap is never retried: DailyLimitReached is raised
at once for a 429 whose message names a daily limit or whose Retry-After is longer than a
minute, and for a 429 still there after a whole minute of back-off (no per-second or
per-minute window lasts that long).

The adapter never touches the database: the exclusion patterns come in as constructor data
(`for_connection`). /v1/account carries no account id, so the one account of a
connection has the external id "account".
"""

import contextlib
import datetime
import json
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from pyrate_limiter import Rate

from integrations.adapters import (
    AccountPage,
    AccountRecord,
    ConnectionCheck,
    ServiceUsage,
    VendorAdapter,
)
from integrations.exclusions import Matcher
from integrations.providers.knowbe4_partner.adapter import service_code, to_date, to_int
from integrations.providers.knowbe4_partner.client import REGIONS
from integrations.services import exclusion_patterns
from reconcile.core import http
from reconcile.core.errors import (
    BadAnswer,
    CredentialRejected,
    ExternalAPIError,
    RateLimited,
)
from reconcile.core.fields import record_id, record_name
from reconcile.core.http import OutsideAPI

ACCOUNT_ID = "account"
MAX_PER_PAGE = 500
# 4 a second and 50 a minute, each window longer than the API's by a margin for the varying
# delay between sending and arriving (50 ms; a second for the minute, as http.per_minute).
RATES = [Rate(4, 1_050), Rate(50, 61_000)]
BURST_WINDOW_SECONDS = 60
_DAILY = re.compile(r"\bdaily\b|\bper day\b|\ba day\b|\btoday\b", re.IGNORECASE)


class DailyLimitReached(RateLimited):
    """The key's daily request budget is spent; nothing helps before the next UTC day."""

    def __init__(self, message: str):
        super().__init__(message)
        now = datetime.datetime.now(datetime.UTC)
        self.retry_at = datetime.datetime.combine(
            now.date() + datetime.timedelta(days=1), datetime.time(), datetime.UTC
        )


def reporting_url(region: str) -> str:
    return settings.KNOWBE4_REPORTING_URLS[region]


def site_label(base_url: str) -> str:
    """Name a base URL by its site for messages ("US (us.api.knowbe4.com)")."""
    for region, url in settings.KNOWBE4_REPORTING_URLS.items():
        if url.rstrip("/") == base_url.rstrip("/"):
            return f"{region.upper()} ({urlsplit(url).netloc})"
    return urlsplit(base_url).netloc or base_url


def site_choices() -> list[tuple[str, str]]:
    return [
        (code, f"{label} — {settings.KNOWBE4_REPORTING_URLS[code]}")
        for code, label in REGIONS.items()
    ]


class ReportingAPI(OutsideAPI):
    """What the Reporting API's 401 and 403 mean for its keys."""

    name = "KnowBe4"
    hint = "Check the site."

    def rejected(self, response: httpx.Response) -> ExternalAPIError:
        if response.status_code == 401:
            return CredentialRejected(
                "KnowBe4 rejected the Reporting API key (HTTP 401). Check that it is this "
                "account's Reporting API token (Account Settings → Account Integrations → API), "
                "that it has not been revoked, and that the account lives on the site "
                f"{self.location}."
            )
        return CredentialRejected(
            "KnowBe4 refused this key the Reporting API (HTTP 403): the API needs a "
            "Platinum or Diamond subscription with Reporting API access enabled."
        )


class ReportingAdapter(VendorAdapter):
    kind = "knowbe4_reporting"
    # One key's pages follow each other (the API says no total), paced to 4 a second.
    default_concurrency = 1

    @classmethod
    def for_connection(cls, connection) -> "ReportingAdapter":
        """It sees single users, so it applies the account's exclusion patterns, handed in as
        data: adapters never touch the database."""
        return cls(
            base_url=connection.base_url,
            credential=connection.credential(),
            exclusions=exclusion_patterns(connection),
        )

    def __init__(
        self,
        *,
        base_url: str,
        credential: str,
        api_schema: str = "",
        exclusions: Sequence[str] = (),
        per_page: int = MAX_PER_PAGE,
    ):
        super().__init__(base_url=base_url.rstrip("/"), credential=credential)
        self.matcher = Matcher(exclusions)
        self.per_page = min(max(per_page, 1), MAX_PER_PAGE)
        self.limiter = http.pace(RATES)
        self.throttled = 0  # 429 answers received
        self.checked_name = ""  # the account's name, once test() read it
        self.http_seconds = 0.0
        self.where = site_label(self.base_url)
        self._api: ReportingAPI | None = None
        self._sent = 0  # requests of sessions already closed
        # 502/503/504 and network errors are retried by httpx-retries as everywhere; 429 here.
        self._retry = http.retry_policy(retry_post=False).copy_with(
            status_forcelist=(502, 503, 504)
        )

    def _session(self) -> ReportingAPI:
        return ReportingAPI(
            limiter=self.limiter,
            location=self.where,
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {self.credential}",
                "Accept": "application/json",
            },
        )

    @property
    def requests(self) -> int:
        """HTTP requests sent by the sessions of this adapter, for the sync report."""
        return self._sent + (self._api.requests if self._api else 0)

    @contextlib.contextmanager
    def _open(self) -> Iterator[ReportingAPI]:
        self._api = self._session()
        try:
            yield self._api
        finally:
            self._sent += self._api.requests
            self._api.close()
            self._api = None

    # --- the interface ---------------------------------------------------------------------

    def test(self) -> ConnectionCheck:
        started = time.monotonic()
        with self._open() as api:
            document = self._account(api)
        record = self._record(document, active=None, excluded=None, by_pattern={})
        self.checked_name = record.name
        latency = int((time.monotonic() - started) * 1000)
        return ConnectionCheck(
            message=f"KnowBe4 accepted the key: account “{record.name}” ({_describe(record)}).",
            latency_ms=latency,
            account_count=1,
        )

    def iter_account_pages(self) -> Iterator[AccountPage]:
        with self._open() as api:
            document = self._account(api)
            active, excluded, by_pattern = self._count_users(api)
        record = self._record(document, active=active, excluded=excluded, by_pattern=by_pattern)
        yield AccountPage(accounts=[record], number=1, total_pages=1, total_count=1)

    # --- reading ---------------------------------------------------------------------------

    def _account(self, api: ReportingAPI) -> dict:
        document = self._get(api, "/v1/account")
        if not isinstance(document, dict):
            raise BadAnswer(f"KnowBe4 at {self.where} answered /v1/account without an account.")
        return document

    def _count_users(self, api: ReportingAPI) -> tuple[int, int, dict[str, int]]:
        seen: set = set()
        by_pattern: Counter = Counter()
        page = 1
        while True:
            body = self._get(
                api, "/v1/users", {"status": "active", "page": page, "per_page": self.per_page}
            )
            users = body.get("data") if isinstance(body, dict) else body
            if not isinstance(users, list):
                raise BadAnswer(
                    f"KnowBe4 at {self.where} answered /v1/users page {page} without a list "
                    "of users."
                )
            new = 0
            for user in users:
                if user is None:
                    continue  # "null users returned from certain KnowBe4 API calls"
                if not isinstance(user, dict):
                    raise BadAnswer(
                        f"KnowBe4 at {self.where} answered /v1/users page {page} with a user "
                        "that is no object."
                    )
                user_id = record_id(
                    user.get("id"),
                    f"KnowBe4 at {self.where} answered /v1/users page {page} with a user",
                )
                if user.get("status", "active") != "active" or user.get("archived_at"):
                    continue
                if user_id in seen:  # a page boundary moved while paging
                    continue
                seen.add(user_id)
                new += 1
                pattern = self.matcher.match(user.get("email")) if self.matcher else None
                if pattern:
                    by_pattern[pattern] += 1
            if len(users) < self.per_page:
                break
            if not new:
                raise BadAnswer(
                    f"KnowBe4 at {self.where} answered /v1/users page {page} with users it had "
                    "already listed: the paging does not advance."
                )
            page += 1
        excluded = sum(by_pattern.values())
        return len(seen), excluded, dict(by_pattern)

    def _record(
        self, document: dict, *, active: int | None, excluded: int | None, by_pattern: dict
    ) -> AccountRecord:
        account_type = str(document.get("type") or "").strip().lower()
        level = str(document.get("subscription_level") or "").strip()
        seats = to_int(document.get("number_of_seats"))  # absent on trial accounts: unknown
        domains = document.get("domains")
        domains = [d for d in domains if isinstance(d, str)] if isinstance(domains, list) else []
        name = record_name(document.get("name"), f"The KnowBe4 account at {self.where}", "KnowBe4")
        billable = None if active is None else active - (excluded or 0)
        service_level = level or account_type.capitalize()
        usage = []
        if service_level and active is not None:
            usage.append(
                ServiceUsage(
                    service_code(service_level),
                    f"KnowBe4 SAT {service_level}",
                    billable,
                    seats,
                    excluded,
                )
            )
        return AccountRecord(
            external_id=ACCOUNT_ID,
            name=name,
            domain=domains[0] if domains else "",
            status="active",
            billing_type=account_type[:16],
            seats=seats,
            active_users=billable,
            excluded_users=excluded,
            subscription_level=level,
            subscription_end_date=to_date(document.get("subscription_end_date")),
            raw={"account": document, "excluded_by_pattern": by_pattern},
            usage=usage,
        )

    # --- HTTP ------------------------------------------------------------------------------

    def _get(self, api: ReportingAPI, path: str, params: dict | None = None):
        waited = 0.0
        attempt = 0
        while True:
            response = self._send(api, path, params)
            if response.status_code != 429:
                return self._json(response, path)
            self.throttled += 1
            detail = _message(response)
            if _DAILY.search(detail):
                raise self._daily(detail)
            retry_after = _retry_after(response)
            if retry_after is not None and retry_after > BURST_WINDOW_SECONDS:
                raise self._daily(detail)
            budget = settings.TRUEUP_HTTP_MAX_RETRY_WAIT
            if waited >= budget:
                if waited >= BURST_WINDOW_SECONDS:  # outlasted every per-second/minute window
                    raise self._daily(detail)
                raise RateLimited(
                    f"KnowBe4 at {self.where} kept answering 429 (too many requests) for "
                    f"{waited:.0f} seconds. Another tool may be using this key; the next sync "
                    "tries again."
                )
            delay = min(retry_after if retry_after else 2.0**attempt, budget - waited)
            time.sleep(delay)
            waited += delay
            attempt += 1

    def _send(self, api: ReportingAPI, path: str, params: dict | None) -> httpx.Response:
        started = time.monotonic()
        try:
            return api.transmit("GET", path, params=params, extensions={"retry": self._retry})
        finally:
            self.http_seconds += time.monotonic() - started

    def _json(self, response: httpx.Response, path: str):
        if response.status_code != 200:
            raise self._api.error(response)
        return self._api.json(response)

    def _daily(self, detail: str) -> DailyLimitReached:
        said = f" (KnowBe4 said: “{detail}”)" if detail else ""
        return DailyLimitReached(
            f"Daily limit reached, next attempt after midnight UTC: KnowBe4's Reporting API at "
            f"{self.where} allows this key a limited number of requests a day (2,000 plus one "
            f"per licensed seat) and refused more (HTTP 429){said}."
        )


def _describe(record: AccountRecord) -> str:
    parts = [record.subscription_level or record.billing_type or "no subscription level"]
    parts.append("seats unknown" if record.seats is None else f"{record.seats:,} seats")
    return ", ".join(parts)


def _message(response: httpx.Response) -> str:
    """The error message of an answer ({"message": ...} or {"errors": [...]}), or its text."""
    try:
        response.read()
    except httpx.HTTPError:
        return ""
    try:
        body = response.json()
    except ValueError:
        return re.sub(r"<[^>]+>|\s+", " ", response.text).strip()[:200]
    if isinstance(body, dict):
        message = body.get("message") or body.get("error")
        errors = body.get("errors")
        if not message and isinstance(errors, list) and errors:
            first = errors[0]
            message = first.get("message") if isinstance(first, dict) else first
        if message:
            return str(message)[:200]
    return json.dumps(body)[:200]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None
