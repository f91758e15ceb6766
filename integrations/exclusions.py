"""E-mail patterns of users who never count toward billing (UserExclusion), and their matching.

A pattern is one e-mail address with shell-style wildcards, matched case-insensitively against
the whole address: `*` is any run of characters, `?` one character, `[abc]` / `[a-z]` / `[!x]`
one character of (or not of) a set. The part after the `@` may be left empty to mean any
domain. So `svc-*@` is every mailbox starting with "svc-" on any domain, `*@example-shared.com`
is a whole domain, `scanner@client.com` one mailbox.

Pure functions: the connect and exclusions forms validate with `normalise()`, and an adapter
that sees single users (the Reporting API connector) counts with `Matcher`; neither touches
the database.
"""

import fnmatch
import re
from collections.abc import Iterable

MAX_LENGTH = 200
# Characters that never appear in an e-mail address (RFC 5322 outside quoted strings).
_FORBIDDEN = set(',;:"<>()\\')


def normalise(text: str) -> str:
    """The pattern as it is stored (lower case, trimmed), or ValueError saying what is wrong."""
    pattern = (text or "").strip().lower()
    if not pattern:
        raise ValueError("Enter a pattern, for example svc-*@ or *@example-shared.com.")
    if len(pattern) > MAX_LENGTH:
        raise ValueError(f"A pattern is at most {MAX_LENGTH} characters long.")
    if any(ch.isspace() for ch in pattern):
        raise ValueError("A pattern cannot contain spaces. Add one pattern at a time.")
    bad = sorted({ch for ch in pattern if ch in _FORBIDDEN or not ch.isprintable()})
    if bad:
        shown = " ".join(repr(ch) for ch in bad)
        raise ValueError(
            f"{shown} cannot appear in an e-mail address. Add one pattern at a time, "
            "using * and ? as wildcards."
        )
    if "@" not in pattern:
        raise ValueError(
            "A pattern matches whole e-mail addresses, so it needs an @: svc-*@ for those "
            "mailboxes on any domain, *@example-shared.com for a whole domain."
        )
    if pattern.count("@") > 1:
        raise ValueError("A pattern has exactly one @.")
    local, domain = pattern.split("@")
    if not local:
        raise ValueError(
            "Put the mailbox part before the @; use * for any mailbox, as in *@example.com."
        )
    _check_sets(pattern)
    if domain and (domain.startswith(".") or domain.endswith(".") or ".." in domain):
        raise ValueError(f"{domain} is not a domain: check the dots.")
    if set(local) <= {"*"} and set(domain) <= {"*"}:
        raise ValueError(
            "This pattern matches every user, so nobody would be billed. To stop billing a "
            "customer, exclude the account in Mapping instead."
        )
    return pattern


def _check_sets(pattern: str) -> None:
    """Every `[` opens a non-empty set closed by `]`; no stray `]`."""
    inside = None
    for position, ch in enumerate(pattern, start=1):
        if inside is None:
            if ch == "]":
                raise ValueError(f"The ] at position {position} closes no [ set.")
            if ch == "[":
                inside = position
        elif ch == "[":
            raise ValueError(f"The [ at position {position} is inside another [ set.")
        elif ch == "]":
            if position - inside == 1 or pattern[inside : position - 1] == "!":
                raise ValueError(f"The [ set at position {inside} is empty.")
            inside = None
    if inside is not None:
        raise ValueError(f"The [ at position {inside} is never closed with ].")


def _regex(pattern: str) -> re.Pattern:
    local, domain = pattern.split("@")
    return re.compile(fnmatch.translate(f"{local}@{domain or '*'}"))


class Matcher:
    """Which pattern, if any, excludes an e-mail address: `Matcher(patterns).match(email)`."""

    def __init__(self, patterns: Iterable[str]):
        self.patterns = sorted(set(patterns))
        self._compiled = [(pattern, _regex(pattern)) for pattern in self.patterns]

    def __bool__(self) -> bool:
        return bool(self._compiled)

    def match(self, email: str | None) -> str | None:
        """The first pattern (in sorted order) matching `email`, or None."""
        if not email:
            return None
        address = email.strip().lower()
        for pattern, regex in self._compiled:
            if regex.match(address):
                return pattern
        return None
