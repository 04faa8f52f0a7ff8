"""Is a member there, and what does it serve: `probe`, its `/metrics`, and the row they make.

`probe` asks a server's `/health`, `/version` and `/v1/models` at once and returns a `Probe`.
Any server may be a member, so its bytes are untrusted: each answer is read with
`core.endpoint.capped.fetch` (at most 1 MiB, one deadline for connect, headers and body, so a
lying content-length or a slow drip costs at most `timeout`), and the JSON is believed only
where it has the right types and sizes. A version or a model id keeps its true characters (a
chat must send the id back as the server wrote it); whoever shows one passes it through
`core.text.visible`. Nothing here raises but cancellation.

`fetch_metrics` reads `/metrics` the same way; `MemberStats.between` turns two readings into
the figures a fleet row shows, with `core.endpoint.metrics.rates`. `RemoteState` is what a
poller knows of a remote member after each probe: up or down and since when, when it last
answered, what it served when it last said.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from vllm_console.core.endpoint.capped import Answer, fetch
from vllm_console.core.endpoint.metrics import MetricsSnapshot, rates
from vllm_console.core.endpoint.metrics import fetch_metrics as read_metrics

__all__ = [
    "PROBE_TIMEOUT_S",
    "MemberStats",
    "Probe",
    "RemoteState",
    "fetch_metrics",
    "member_url",
    "probe",
    "server_root",
]

PROBE_TIMEOUT_S = 2.0
# A version is "0.11.1rc2.dev135+g1234567.cu128" at most; an id a repository name or a path.
MAX_VERSION_CHARS = 100
MAX_ID_CHARS = 512
MAX_MODELS = 256
_HOST = re.compile(r"[A-Za-z0-9_.-]+")


def server_root(url: str) -> str:
    """The URL without a trailing `/v1` (or `/v1/v1/`) in its path: where vLLM serves
    `/health`, `/version` and `/metrics`. A host named `v1` stays."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip().rstrip("/")
    path = parts.path.rstrip("/")
    while path.endswith("/v1"):
        path = path[:-3].rstrip("/")
    return parts._replace(path=path).geturl()


@dataclass(frozen=True)
class Probe:
    """One look at a server. `answered`: it answered anything at all (an HTTP status).
    `healthy`: `/health` said 200 (or, on an OpenAI-compatible server without `/health`,
    it listed its models). `error` says what went wrong, also when it is healthy (a key
    rejected). `checked_at` is wall-clock time (`time.time()`), for "down since 14:02:11"."""

    healthy: bool
    version: str | None = None
    models: tuple[str, ...] = ()
    error: str | None = None
    checked_at: float = 0.0
    answered: bool = False


async def probe(
    client: httpx.AsyncClient,
    url: str,
    api_key: str | None,
    *,
    timeout: float = PROBE_TIMEOUT_S,
) -> Probe:
    """GET `/health`, `/version` and `/v1/models` of `url` (with or without `/v1`) at once;
    returns within `timeout` seconds (and a little) whatever the server does."""
    root = server_root(url)
    health, version, models = await asyncio.gather(
        fetch(client, f"{root}/health", timeout=timeout),
        fetch(client, f"{root}/version", timeout=timeout),
        fetch(client, f"{root}/v1/models", api_key=api_key, timeout=timeout),
    )
    return _judge(health, version, models)


def _judge(health: Answer, version: Answer, models: Answer) -> Probe:
    now = time.time()
    if all(answer.status is None for answer in (health, version, models)):
        return Probe(False, error=health.error or models.error or "no answer", checked_at=now)
    served = _models(models.json()) if models.status == 200 else None
    no_health = health.status == 404 and health.error is None
    healthy = (health.status == 200 and health.error is None) or (no_health and bool(served))
    problems: list[str] = []
    if not healthy:
        problems.append(f"/health: {_what(health)}")
    if models.status in (401, 403):
        problems.append(f"API key rejected (HTTP {models.status})")
    elif served is None:
        listed = models.status == 200 and models.error is None
        problems.append(f"/v1/models: {'not a model list' if listed else _what(models)}")
    return Probe(
        healthy,
        version=_version(version.json()) if version.status == 200 else None,
        models=served or (),
        error="; ".join(problems) or None,
        checked_at=now,
        answered=True,
    )


def _what(answer: Answer) -> str:
    return answer.error or f"HTTP {answer.status}"


def _version(body: Any) -> str | None:
    found = body.get("version") if isinstance(body, dict) else None
    if isinstance(found, str) and 0 < len(found) <= MAX_VERSION_CHARS:
        return found
    return None


def _models(body: Any) -> tuple[str, ...] | None:
    """The ids of an OpenAI model list; None when it is not one. Ids that are not strings,
    or empty, or longer than MAX_ID_CHARS are left out; at most MAX_MODELS are kept."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return None
    found: dict[str, None] = {}  # ordered, without repeats
    for card in data:
        name = card.get("id") if isinstance(card, dict) else None
        if isinstance(name, str) and 0 < len(name) <= MAX_ID_CHARS:
            found[name] = None
            if len(found) == MAX_MODELS:
                break
    return tuple(found)


async def fetch_metrics(
    client: httpx.AsyncClient,
    url: str,
    api_key: str | None = None,
    *,
    timeout: float = PROBE_TIMEOUT_S,
) -> MetricsSnapshot | None:
    """One reading of `url`'s `/metrics` (capped, then parsed); None when it gave no vLLM
    metrics (not there, not vLLM, or garbage)."""
    # the endpoint's reader drops a trailing /v1 itself: give it one, so a host named v1 stays
    snapshot = await read_metrics(client, f"{server_root(url)}/v1", api_key, timeout)
    return None if snapshot.empty else snapshot


@dataclass(frozen=True)
class MemberStats:
    """A fleet row's figures. None: unknown (the rate needs two readings)."""

    running: float | None = None
    waiting: float | None = None
    kv_cache: float | None = None  # 0..1
    generation_tokens_per_s: float | None = None

    @classmethod
    def between(cls, earlier: MetricsSnapshot | None, later: MetricsSnapshot) -> MemberStats:
        """The gauges of `later`; the token rate since `earlier` (None without it, or across
        a restart)."""
        pace = rates(earlier, later).generation_tokens_per_s if earlier is not None else None
        kv = later.kv_cache_usage
        return cls(
            running=later.requests_running,
            waiting=later.requests_waiting,
            kv_cache=None if kv is None else min(max(kv, 0.0), 1.0),
            generation_tokens_per_s=pace,
        )

    def summary(self) -> str:
        def num(value: float | None, fmt: str) -> str:
            return "\N{EN DASH}" if value is None else fmt.format(value)

        kv = None if self.kv_cache is None else 100 * self.kv_cache
        return (
            f"{num(self.running, '{:,.0f}')} running · {num(self.waiting, '{:,.0f}')} waiting"
            f" · KV cache {num(kv, '{:.0f} %')} · {num(self.generation_tokens_per_s, '{:,.1f}')}"
            " tokens/s"
        )


@dataclass(frozen=True)
class RemoteState:
    """A remote member as its poller last saw it: the fleet table's row.

    `since`: when `healthy` last changed (the first probe counts as a change), wall clock.
    `last_answer`: when it last answered anything; None if it never has. `version` and
    `models` are those of its last answer (a member that went down still shows what it
    served); `stats` are the latest figures, None while down or without metrics.
    """

    healthy: bool
    version: str | None = None
    models: tuple[str, ...] = ()
    stats: MemberStats | None = None
    since: float = 0.0
    last_answer: float | None = None
    error: str | None = None
    checked_at: float = 0.0

    @classmethod
    def first(cls, seen: Probe, stats: MemberStats | None = None) -> RemoteState:
        return cls(False, since=seen.checked_at).after(seen, stats, first=True)

    def after(self, seen: Probe, stats: MemberStats | None, *, first: bool = False) -> RemoteState:
        """This state updated by the next probe (and its metrics)."""
        changed = first or seen.healthy != self.healthy
        state = replace(
            self,
            healthy=seen.healthy,
            stats=stats if seen.healthy else None,
            since=seen.checked_at if changed else self.since,
            error=seen.error,
            checked_at=seen.checked_at,
        )
        if seen.answered:
            state = replace(
                state, version=seen.version, models=seen.models, last_answer=seen.checked_at
            )
        return state

    def describe(self, now: float | None = None) -> str:
        """ "up since 14:02:11", or "down since 14:02:11, last answer 40 s ago"."""
        now = time.time() if now is None else now
        word = "up" if self.healthy else "down"
        line = f"{word} since {_clock(self.since, now)}"
        if self.healthy:
            return line
        if self.last_answer is None:
            return f"{line}, no answer yet"
        return f"{line}, last answer {_ago(now - self.last_answer)}"


def _clock(at: float, now: float) -> str:
    fmt = "%H:%M:%S" if abs(now - at) < 20 * 3600 else "%Y-%m-%d %H:%M:%S"
    return time.strftime(fmt, time.localtime(at))


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.0f} h ago"


def member_url(text: str) -> str:
    """A remote member's base URL from what a person typed: http or https, a host, an
    optional port and path; a trailing `/v1` dropped. Raises ValueError saying what is wrong."""
    text = text.strip()
    if not text:
        raise ValueError("type the server's address, e.g. http://gpu-box:8000")
    if not text.isprintable() or " " in text:
        raise ValueError("no spaces or control characters in an address")
    if "://" not in text:
        raise ValueError(f"start with http:// or https://, e.g. http://{text}")
    try:
        parts = urlsplit(text)
    except ValueError:  # brackets around something that is not an IPv6 address
        raise ValueError(f"{text!r} is not a host name or an IP address") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"{parts.scheme}:// is not http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise ValueError("no user or password in the address: put a key in the API key field")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError("no ?query or #fragment in a server's address")
    host = parts.hostname or ""
    if not host:
        raise ValueError("no host: e.g. http://gpu-box:8000")
    if not _is_host(host):
        raise ValueError(f"{host!r} is not a host name or an IP address")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("the port must be a number from 1 to 65535")
    return server_root(f"{parts.scheme.lower()}://{parts.netloc}{parts.path}")


def _is_host(host: str) -> bool:
    if ":" in host:  # an IPv6 address, written in brackets
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return False
        return True
    return bool(_HOST.fullmatch(host)) and not host.startswith(("-", ".")) and ".." not in host
