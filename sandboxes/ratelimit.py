"""Plumbing shared by the PSA sandboxes: rate limiting, fault injection, the control API,
per-partner state and deterministic credentials.

Every PSA sandbox owns one `SandboxControl`. A request handler calls, in this order:

1. `await control.begin()` - counts the request, applies `delay_seconds`, and answers the
   requests listed in `fail_on_requests` with `fail_status` (JSON in the PSA's own error shape,
   or an IIS-style HTML page when `html_errors` is on: the three PSAs are hosted on IIS/.NET).
   Requests are numbered from 1 after each reset and include codebase, zone and token lookups;
   control requests are not counted;
2. its own authentication;
3. `control.check_rate(credential)` - the sliding window of `rate_limit_per_minute` per
   credential, answered with 429 and `Retry-After` in whole seconds.

The control API, under `/_sandbox/<name>/`:
- `POST faults` merges a JSON object into the switches (`{}` keeps them, `{"clear": true}`
  restores the defaults first). Keys: fail_on_requests, fail_status, rate_limit_per_minute,
  delay_seconds, html_errors, reject_writes (a message, or null), plus the sandbox's own keys.
- `GET state` returns the request count, the faults, the 429 count and the write log.
- `POST reset` restores the sandbox's data and clears faults, counters and log.
"""

import asyncio
import base64
import binascii
import collections
import copy
import datetime
import hashlib
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Generic, TypeVar

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

ErrorRenderer = Callable[[int, str], Response]
T = TypeVar("T")

COMMON_FAULTS = {
    "fail_on_requests": [],
    "fail_status": 500,
    "rate_limit_per_minute": None,
    "delay_seconds": 0.0,
    "html_errors": False,
    "reject_writes": None,
    # Answer a write as if it were applied without applying it (a PSA workflow that reverts
    # it, a replica that lags): what a read-back must catch.
    "ignore_writes": False,
}
_FAULT_TYPES = {
    "fail_on_requests": list,
    "fail_status": int,
    "rate_limit_per_minute": (int, type(None)),
    "delay_seconds": (int, float),
    "html_errors": bool,
    "reject_writes": (str, type(None)),
}

_IIS_PAGE = """<!DOCTYPE html>
<html><head><title>{status} - {reason}</title></head>
<body><div id="header"><h1>Server Error</h1></div>
<div id="content"><h2>{status} - {reason}</h2>
<h3>{detail}</h3>
</div></body></html>
"""
_REASONS = {
    404: "File or directory not found.",
    500: "Internal server error.",
    502: "Web server received an invalid response while acting as a gateway or proxy server.",
    503: "Service unavailable.",
}
_DETAILS = {
    404: "The resource you are looking for might have been removed, had its name changed, or is "
    "temporarily unavailable.",
}


class SlidingWindow:
    """At most `limit` hits per `window` seconds for each key; not thread-safe on its own."""

    def __init__(self, limit: int, window: float):
        self.limit = limit
        self.window = window
        self._hits: dict[str, collections.deque[float]] = {}

    def hit(self, key: str, now: float) -> int | None:
        """Record a hit, or return the whole seconds to wait if the window is full."""
        hits = self._hits.setdefault(key, collections.deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(1, math.ceil(hits[0] + self.window - now))
        hits.append(now)
        return None

    def usage(self, key: str, now: float) -> int:
        hits = self._hits.get(key, ())
        return sum(1 for t in hits if t > now - self.window)


def html_error(status: int) -> HTMLResponse:
    """The HTML error page IIS answers with (the three PSAs are hosted on IIS)."""
    reason = _REASONS.get(status, "Error.")
    detail = _DETAILS.get(
        status,
        "There is a problem with the resource you are looking for, and it cannot be displayed.",
    )
    page = _IIS_PAGE.format(status=status, reason=reason, detail=detail)
    return HTMLResponse(page, status_code=status)


class SandboxControl:
    """Fault switches, request counter, rate windows and write log of one sandbox."""

    def __init__(
        self,
        name: str,
        render_error: ErrorRenderer,
        reset_sandbox: Callable[[], None],
        extra_faults: dict | None = None,
    ):
        self.name = name
        self.render_error = render_error
        self._reset_sandbox = reset_sandbox
        self._defaults = {**COMMON_FAULTS, **(extra_faults or {})}
        self.lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self.faults = copy.deepcopy(self._defaults)
        self.requests = 0
        self.rate_limited = 0
        self.writes: list[dict] = []
        self._minute_window: SlidingWindow | None = None

    def reset(self) -> None:
        with self.lock:
            self._clear()

    def fault(self, key: str):
        with self.lock:
            return self.faults[key]

    def configure(self, changes: dict) -> dict:
        """Merge `changes` into the faults; raise ValueError on an unknown key."""
        changes = dict(changes)
        clear = changes.pop("clear", False)
        unknown = set(changes) - set(self._defaults)
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        for key, value in changes.items():
            expected = _FAULT_TYPES.get(key, type(self._defaults[key]))
            if not isinstance(value, expected) or (isinstance(value, bool) and expected is int):
                raise ValueError(f"{key} has the wrong type: {value!r}")
        with self.lock:
            if clear:
                self.faults = copy.deepcopy(self._defaults)
            self.faults.update(changes)
            if clear or "rate_limit_per_minute" in changes:
                self._minute_window = None  # a new threshold starts a new window
            return copy.deepcopy(self.faults)

    async def begin(self) -> Response | None:
        """Count the request, wait `delay_seconds`, and answer it if it is set to fail."""
        with self.lock:
            self.requests += 1
            number = self.requests
            delay = float(self.faults["delay_seconds"] or 0)
            failing = number in self.faults["fail_on_requests"]
            status = int(self.faults["fail_status"])
            html = bool(self.faults["html_errors"])
        if delay:
            await asyncio.sleep(delay)
        if not failing:
            return None
        if html:
            return html_error(status)
        return self.render_error(status, "An unexpected error occurred on the server.")

    def check_rate(self, credential: str) -> Response | None:
        """Apply `rate_limit_per_minute` to this credential: 429 with Retry-After when full."""
        with self.lock:
            limit = self.faults["rate_limit_per_minute"]
            if not limit:
                return None
            if self._minute_window is None:
                self._minute_window = SlidingWindow(int(limit), 60.0)
            wait = self._minute_window.hit(credential, time.monotonic())
            if wait is None:
                return None
            self.rate_limited += 1
        return self.too_many_requests(wait, "Rate limit exceeded. Retry later.")

    def too_many_requests(self, wait: int, message: str) -> Response:
        response = self.render_error(429, message)
        response.headers["Retry-After"] = str(wait)
        return response

    def count_rate_limited(self) -> None:
        with self.lock:
            self.rate_limited += 1

    def write_refusal(self) -> str | None:
        """The message every write must be refused with, if `reject_writes` is set."""
        with self.lock:
            return self.faults["reject_writes"]

    def log_write(self, **entry) -> None:
        entry["at"] = datetime.datetime.now(datetime.UTC).isoformat()
        with self.lock:
            self.writes.append(entry)

    def state(self) -> dict:
        with self.lock:
            return {
                "name": self.name,
                "requests": self.requests,
                "rate_limited": self.rate_limited,
                "faults": copy.deepcopy(self.faults),
                "writes": copy.deepcopy(self.writes),
            }

    def routes(self) -> list[BaseRoute]:
        prefix = f"/_sandbox/{self.name}"
        return [
            Route(f"{prefix}/faults", self._faults_endpoint, methods=["GET", "POST"]),
            Route(f"{prefix}/state", self._state_endpoint, methods=["GET"]),
            Route(f"{prefix}/reset", self._reset_endpoint, methods=["POST"]),
        ]

    async def _faults_endpoint(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(self.state()["faults"])
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object")
            return JSONResponse(self.configure(changes))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    async def _state_endpoint(self, request: Request) -> Response:
        return JSONResponse(self.state())

    async def _reset_endpoint(self, request: Request) -> Response:
        self._reset_sandbox()
        return JSONResponse(self.state())


class PartnerStates(Generic[T]):
    """Each partner's mutable sandbox state, built on first use and dropped by `clear()`.

    Hold `lock` while reading or changing a state: uvicorn serves requests concurrently.
    """

    def __init__(self, build: Callable[[str], T]):
        self._build = build
        self._states: dict[str, T] = {}
        self.lock = threading.RLock()

    def get(self, partner_slug: str) -> T:
        with self.lock:
            if partner_slug not in self._states:
                self._states[partner_slug] = self._build(partner_slug)
            return self._states[partner_slug]

    def clear(self) -> None:
        with self.lock:
            self._states.clear()


def token(*parts: str, length: int = 32, alphabet: str = "0123456789abcdef") -> str:
    """A deterministic random-looking credential made of `alphabet`."""
    number = int.from_bytes(hashlib.sha512("/".join(("trueup-psa", *parts)).encode()).digest())
    chars = []
    for _ in range(length):
        number, index = divmod(number, len(alphabet))
        chars.append(alphabet[index])
    return "".join(chars)


def guid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "trueup-psa/" + "/".join(parts)))


def basic_auth(request: Request) -> tuple[str, str] | None:
    """The (user, password) of an HTTP Basic Authorization header, or None."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, separator, password = decoded.partition(":")
    return (user, password) if separator else None


def int_or_none(value) -> int | None:
    """`value` as an int (a JSON number or numeric string), or None."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
