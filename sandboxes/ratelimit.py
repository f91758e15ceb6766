"""Plumbing shared by the PSA sandboxes: rate limiting, fault injection, the control API,
per-partner state and deterministic credentials.

Every PSA sandbox owns one `SandboxControl`. A request handler calls, in this order:

1. `await control.begin()` - counts the request, applies `delay_seconds`, and answers the
   requests listed in `fail_on_requests` with `fail_status` (JSON in the PSA's own error shape,
   or an IIS-style HTML page when `html_errors` is on: the three PSAs are hosted on IIS/.NET).
   Requests are numbered from 1 after each reset and include codebase, zone and token lookups;
   control requests are not counted. A request listed in `mangle_on_requests` is answered as
   usual and its answer then spoiled (see below);
2. its own authentication;
3. `control.check_rate(credential)` - the sliding window of `rate_limit_per_minute` per
   credential, answered with 429 and `Retry-After` in whole seconds.

The control API, under `/_sandbox/<name>/`:
- `POST faults` merges a JSON object into the switches (`{}` keeps them, `{"clear": true}`
  restores the defaults first). Keys: fail_on_requests, fail_status, rate_limit_per_minute,
  delay_seconds, slow_on_requests (request numbers that wait slow_seconds more), slow_seconds,
  html_errors, reject_writes (a message, or null), ignore_writes, mangle,
  mangle_on_requests, plus the sandbox's own keys.
- `GET state` returns the request count, the faults, the 429 count and the write log.
- `POST reset` restores the sandbox's data and clears faults, counters and log.

Malformed answers (`mangle`, one of MANGLES, applied to the requests numbered in
`mangle_on_requests`, so page 2 of an import can be spoiled while page 1 is fine). The request is
handled normally; if its answer is a successful (2xx) JSON answer, it is rewritten by
`mangle_response` before it leaves; any other answer (an error, an empty 204) passes unchanged:

- "truncate": the JSON text cut in half (still `application/json`, with a matching length);
- "html": a 200 `text/html` page instead (a proxy's or a captive portal's sign-in page);
- "wrong_types": every JSON number, at any depth, becomes an object `{"x": <number>}`
  (ids, counts, quantities, paging numbers); booleans and strings stay;
- "missing_fields": the keys in REQUIRED_KEYS (ids, names, quantities, paging) are dropped from
  every object at any depth;
- "null_names": the values of the keys in NAME_KEYS become null at any depth;
- "huge": a 10 MB answer (HUGE_BYTES): the first NAME_KEYS value becomes a 10 MB string; an answer
  without a name gets a 10 MB `padding` string in its first object, or 10 MB of trailing
  whitespace (still valid JSON) when it has no object at all.

Endpoints opt in with the `@mangling` decorator (each PSA sandbox's dispatching endpoints; the
KnowBe4 sandbox's API endpoints, which decide per key in `_admit`): `control.begin()` (or the
KnowBe4 sandbox) calls `mangle_answer(kind)` for a listed request, and the decorator rewrites the
response the endpoint returned. The decision lives in a context variable, so it belongs to
that one request even when uvicorn serves several at once.
"""

import asyncio
import base64
import binascii
import collections
import contextvars
import copy
import datetime
import functools
import hashlib
import json
import math
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
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
    # These request numbers wait `slow_seconds` more: a slow answer among fast ones.
    "slow_on_requests": [],
    "slow_seconds": 1.0,
    "html_errors": False,
    "reject_writes": None,
    # Answer a write as if it were applied without applying it (a PSA workflow that reverts
    # it, a replica that lags): what a read-back must catch.
    "ignore_writes": False,
    # Spoil the (successful JSON) answers of these request numbers: one of MANGLES, or null.
    "mangle": None,
    "mangle_on_requests": [],
}
MANGLES = ("truncate", "html", "wrong_types", "missing_fields", "null_names", "huge")
_FAULT_TYPES = {
    "fail_on_requests": list,
    "fail_status": int,
    "rate_limit_per_minute": (int, type(None)),
    "delay_seconds": (int, float),
    "slow_on_requests": list,
    "slow_seconds": (int, float),
    "html_errors": bool,
    "reject_writes": (str, type(None)),
    "mangle": (str, type(None)),
    "mangle_on_requests": list,
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


# --- malformed answers ---------------------------------------------------------------------------

HUGE_BYTES = 10 * 1024 * 1024
# Keys every API here needs to be there (ids, names, quantities, paging); "missing_fields" drops
# them wherever they occur.
REQUIRED_KEYS = frozenset(
    {
        "id",
        "name",
        "companyName",
        "displayName",
        "quantity",
        "qty_order",
        "units",
        "pagination",
        "record_count",
        "queryCount",
        "count",
    }
)
# What names a company, account or product in the sandboxes' answers ("null_names", "huge").
# "huge" fills the first of them an object has, in this order (a person's name last: Syncro
# names a customer by its business name and falls back on the person's).
NAME_ORDER = (
    "name",
    "business_name",
    "companyName",
    "displayName",
    "client_name",
    "description",
    "fullname",
)
NAME_KEYS = frozenset(NAME_ORDER)
_MANGLE_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - Web Gateway</title></head>
<body><h1>Your session has expired</h1>
<form method="post" action="/login"><input name="username"><input type="password"
name="password"><button>Sign in</button></form></body></html>
"""
_pending_mangle: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sandbox_mangle", default=None
)


def mangle_problem(changes: dict) -> str | None:
    """Why `mangle` / `mangle_on_requests` in a settings change are invalid, or None."""
    kind = changes.get("mangle")
    if kind is not None and kind not in MANGLES:
        return f"mangle: one of {', '.join(MANGLES)}, or null"
    numbers = changes.get("mangle_on_requests", [])
    if not isinstance(numbers, list) or any(
        not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in numbers
    ):
        return "mangle_on_requests: a list of request numbers, 1 for the first request"
    return None


def mangle_answer(kind: str) -> None:
    """Spoil the answer of the request being handled (call it from within a `@mangling`
    endpoint, before it returns)."""
    _pending_mangle.set(kind)


def mangling(endpoint: Callable[..., Awaitable[Response]]):
    """Decorate an endpoint so that its answer is spoiled when `mangle_answer` was called."""

    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Response:
        token = _pending_mangle.set(None)
        try:
            response = await endpoint(request)
            kind = _pending_mangle.get()
        finally:
            _pending_mangle.reset(token)
        return mangle_response(response, kind) if kind else response

    return wrapped


def mangle_response(response: Response, kind: str) -> Response:
    """`response` spoiled the `kind` way, if it is a successful JSON answer; else unchanged."""
    content_type = response.headers.get("content-type", "")
    body = getattr(response, "body", None)
    if not 200 <= response.status_code < 300 or "json" not in content_type or not body:
        return response
    headers = {
        k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")
    }
    if kind == "html":
        return HTMLResponse(_MANGLE_PAGE, response.status_code, headers=headers)
    if kind == "truncate":
        content = body[: len(body) // 2]
    elif kind == "huge":
        content = _huge(json.loads(body))
    else:
        content = json.dumps(mangle_json(json.loads(body), kind)).encode()
    return Response(content, response.status_code, headers=headers, media_type=content_type)


def mangle_json(value, kind: str):
    """A parsed JSON answer spoiled by "wrong_types", "missing_fields" or "null_names"."""
    if isinstance(value, list):
        return [mangle_json(item, kind) for item in value]
    if isinstance(value, dict):
        spoiled = {}
        for key, item in value.items():
            if kind == "missing_fields" and key in REQUIRED_KEYS:
                continue
            if kind == "null_names" and key in NAME_KEYS:
                spoiled[key] = None
                continue
            spoiled[key] = mangle_json(item, kind)
        return spoiled
    if kind == "wrong_types" and isinstance(value, int | float) and not isinstance(value, bool):
        return {"x": value}
    return value


def _huge(value) -> bytes:
    big = "Huge " + "x" * (HUGE_BYTES - 5)

    def first(node, match) -> bool:
        """Apply `match` to the first object it accepts, depth first."""
        if isinstance(node, dict):
            if match(node):
                return True
            return any(first(item, match) for item in node.values())
        if isinstance(node, list):
            return any(first(item, match) for item in node)
        return False

    def name_it(node: dict) -> bool:
        key = next((k for k in NAME_ORDER if k in node), None)
        if key is not None:
            node[key] = big
        return key is not None

    def pad_it(node: dict) -> bool:
        node["padding"] = big
        return True

    if first(value, name_it) or first(value, pad_it):
        return json.dumps(value).encode()
    return json.dumps(value).encode() + b" " * HUGE_BYTES


class ApiError(Exception):
    """A refusal a sandbox answers with its API's error body (`render_error(status, message)`)."""

    def __init__(self, status: int, message: str = ""):
        super().__init__(message)
        self.status, self.message = status, message


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
        problem = mangle_problem(changes)
        if problem:
            raise ValueError(problem)
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
            if number in self.faults["slow_on_requests"]:
                delay += float(self.faults["slow_seconds"] or 0)
            failing = number in self.faults["fail_on_requests"]
            status = int(self.faults["fail_status"])
            html = bool(self.faults["html_errors"])
            mangle = self.faults["mangle"] if number in self.faults["mangle_on_requests"] else None
        if mangle:
            mangle_answer(mangle)
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
