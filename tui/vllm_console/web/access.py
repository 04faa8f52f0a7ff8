"""Who may use the web console: the token, its cookie, the rate limit on wrong ones.

Pure functions and one small class, no aiohttp: the server asks `Gate.check` about every
request before anything else runs. A token opens the door once (the URL printed at start);
the browser then holds a cookie derived from it (HttpOnly, SameSite=Strict), so the token
itself leaves the address bar at once. Comparisons are constant-time. Nothing here ever
logs or returns the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urlsplit

TOKEN_ENV = "VLLM_CONSOLE_WEB_TOKEN"
COOKIE_NAME = "vllm_console_web"
TOKEN_PARAM = "token"
MIN_TOKEN_LENGTH = 16
MAX_TOKEN_LENGTH = 256
TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")

WRONG_LIMIT = 5  # wrong tokens from one address within WRONG_WINDOW before it is refused
WRONG_WINDOW = 60.0  # seconds


class TokenError(ValueError):
    """A token given in the environment that would be weak or unusable in a URL."""


def new_token() -> str:
    return secrets.token_urlsafe(24)


def check_token(token: str) -> str:
    """`token` if it is long enough and URL-safe; TokenError (saying why, not what) if not."""
    if not MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH:
        raise TokenError(
            f"{TOKEN_ENV} must be {MIN_TOKEN_LENGTH} to {MAX_TOKEN_LENGTH} characters long"
        )
    if not set(token) <= TOKEN_CHARS:
        raise TokenError(f"{TOKEN_ENV} may hold only letters, digits and - _ . ~")
    return token


def cookie_value(token: str) -> str:
    """What the browser keeps: derived from the token, so the cookie jar never holds it."""
    return hmac.new(token.encode(), b"vllm-console web cookie", hashlib.sha256).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def origin_matches(origin: str | None, host: str | None) -> bool:
    """A websocket upgrade from a page of ours: its Origin names the host it was served
    from. No Origin (not a browser) passes: the cookie or token still has to."""
    if origin is None:
        return True
    if not host:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https"):
        return False
    return parts.netloc.lower() == host.lower()


class Verdict(Enum):
    ALLOW = "allow"  # the cookie matches
    OPEN = "open"  # the right token in the URL: set the cookie, send the browser on
    REFUSE = "refuse"  # no (or no right) credential: 403
    LIMITED = "limited"  # too many wrong tokens from this address: 429


@dataclass
class Gate:
    """The token, and the addresses that sent wrong ones lately."""

    token: str
    clock: Callable[[], float] = time.monotonic
    wrong: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cookie = cookie_value(self.token)

    def check(self, peer: str, query: Mapping[str, str], cookies: Mapping[str, str]) -> Verdict:
        """The verdict on one request from `peer` (an address), given its query and cookies.
        A wrong token or cookie counts against the address; past the limit even the right
        one waits for the window to pass."""
        if self.limited(peer):
            return Verdict.LIMITED
        given_cookie = cookies.get(COOKIE_NAME)
        given_token = query.get(TOKEN_PARAM)
        if given_token is not None:
            if same_secret(given_token, self.token):
                return Verdict.OPEN
            self._count(peer)
            return Verdict.REFUSE
        if given_cookie is not None:
            if same_secret(given_cookie, self.cookie):
                return Verdict.ALLOW
            self._count(peer)
        return Verdict.REFUSE

    def limited(self, peer: str) -> bool:
        recent = self._recent(peer)
        return len(recent) >= WRONG_LIMIT

    def wrong_count(self, peer: str) -> int:
        return len(self._recent(peer))

    def _recent(self, peer: str) -> list[float]:
        now = self.clock()
        recent = [t for t in self.wrong.get(peer, ()) if now - t < WRONG_WINDOW]
        if recent:
            self.wrong[peer] = recent
        else:
            self.wrong.pop(peer, None)
        return recent

    def _count(self, peer: str) -> None:
        self.wrong.setdefault(peer, []).append(self.clock())
        if len(self.wrong) > 10_000:  # a flood from many addresses must not grow without end
            oldest = min(self.wrong, key=lambda p: self.wrong[p][-1])
            del self.wrong[oldest]
