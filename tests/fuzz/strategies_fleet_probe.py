"""Fuzzing a fleet member's probe and /metrics over a real socket, and the URLs people type.

The server is tests/fakes/hostile_http.py on loopback (one per process, started on first
use): each input is the raw bytes it answers on `/health`, `/version`, `/v1/models` and
`/metrics`, from honest answers to lies: a content-length too short, too long (the connection
then held open past the probe's timeout), huge or not a number; chunked framing broken; a
body compressed though plain was asked; bodies over the 1 MiB cap; JSON of the wrong types,
numbers of thousands of digits, nesting a hundred thousand deep, ids with escape sequences;
bytes mutated as strategies_endpoint does. A check fails when `probe` or `fetch_metrics`
raises, overruns its timeout, or returns something out of bounds (a version or id too long,
too many models, a healthy server that gave no 200, figures no server could send).
`member_url` gets arbitrary text and must accept it as a URL httpx takes, or say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from hypothesis import strategies as st

from tests.fakes.hostile_http import HostileServer, Reply, response
from tests.fuzz.strategies_endpoint import NUMBERS, check_snapshot, metrics_texts, mutate
from vllm_console.core.endpoint.capped import MAX_BODY_BYTES
from vllm_console.core.endpoint.client import make_client
from vllm_console.core.fleet.probe import (
    MAX_ID_CHARS,
    MAX_MODELS,
    MAX_VERSION_CHARS,
    MemberStats,
    Probe,
    fetch_metrics,
    member_url,
    probe,
    server_root,
)
from vllm_console.core.text import visible

TIMEOUT = 0.3  # the probe's, per input
SLACK = 0.7  # over it, on a shared 2-core machine
_lock = threading.Lock()
_server: HostileServer | None = None


def _hostile() -> HostileServer:
    global _server
    with _lock:
        if _server is None:
            _server = HostileServer().start()
        return _server


@dataclass(frozen=True)
class Case:
    """What the server answers, and what an honest answer would make of it (None: anything
    within bounds)."""

    replies: dict[str, Reply]
    healthy: bool | None = None
    models: tuple[str, ...] | None = None


# --- bodies -----------------------------------------------------------------------------

_ODD_TEXT = st.sampled_from(["\x1b[2J", "\x1b]0;pwned\x07", "\u202e", "\x00", "\ud800", "a" * 600])
_TEXT = st.one_of(st.text(max_size=30), _ODD_TEXT)
_NOT_A_STRING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def _card(draw: st.DrawFn) -> object:
    if draw(st.integers(0, 5)) == 0:
        return draw(_NOT_A_STRING)
    ident = draw(st.one_of(_TEXT, _NOT_A_STRING)) if draw(st.booleans()) else draw(_TEXT)
    return {
        "id": ident,
        "object": "model",
        "owned_by": "vllm",
        "max_model_len": draw(_NOT_A_STRING),
    }


def _expected_models(cards: list[object]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for card in cards:
        ident = card.get("id") if isinstance(card, dict) else None
        if isinstance(ident, str) and 0 < len(ident) <= MAX_ID_CHARS and len(found) < MAX_MODELS:
            found[ident] = None
    return tuple(found)


def _dumps(value: object) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


@st.composite
def _odd_json(draw: st.DrawFn) -> bytes:
    """JSON (or nearly) that a parser can choke on."""
    kind = draw(st.sampled_from(["number", "nest", "garbage", "big", "mutated"]))
    if kind == "number":
        return f'{{"version": {draw(st.sampled_from(NUMBERS)) or 0}, "data": 1}}'.encode()
    if kind == "nest":
        return draw(st.sampled_from([b"[", b'{"data":'])) * draw(st.sampled_from([50, 100_000]))
    if kind == "garbage":
        return draw(st.binary(max_size=200))
    if kind == "big":
        return b'{"data": [' + b'{"id": "m"},' * (MAX_BODY_BYTES // 12) + b'{"id": "n"}]}'
    return mutate(draw, _dumps({"data": [{"id": "tiny"}], "version": "0.32.0"}))


# --- framing ----------------------------------------------------------------------------

_STATUSES = ["200 OK", "200 OK", "404 Not Found", "401 Unauthorized", "500 Oops", "999 X"]


@st.composite
def _framed(draw: st.DrawFn, body: bytes) -> tuple[Reply, bool]:
    """`body` in an HTTP answer, honest or not; and whether it was honest."""
    status = draw(st.sampled_from(_STATUSES))
    lie = draw(st.sampled_from(["none"] * 6 + ["short", "long", "held", "huge", "nan", "absent"]))
    lie = draw(st.sampled_from([lie, lie, "gzip", "chunked", "head", "raw"]))
    length: int | str | None = None
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
    hold = 0.0
    if lie == "short":
        length = max(0, len(body) - draw(st.integers(1, 10)))
    elif lie in ("long", "held"):
        length = len(body) + draw(st.integers(1, 1000))
        hold = TIMEOUT + 0.2 if lie == "held" else 0.0
    elif lie == "huge":
        length = draw(st.sampled_from([MAX_BODY_BYTES + 1, 10**11, 10**40]))
    elif lie == "nan":
        length = draw(st.sampled_from(["-1", "abc", "1e3", " 5", "0x10", "1,2"]))
    elif lie == "absent":
        length = ""
    elif lie == "gzip":
        headers += (("content-encoding", draw(st.sampled_from(["gzip", "br", "identity"]))),)
    elif lie == "chunked":
        sizes = draw(st.sampled_from([b"%x" % len(body), b"zz", b"-1", b"ffffffffffff"]))
        raw = (
            f"HTTP/1.1 {status}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".encode()
        )
        return Reply(raw + sizes + b"\r\n" + body + b"\r\n0\r\n\r\n"), False
    elif lie == "head":
        raw = b"HTTP/1.1 " + draw(st.binary(max_size=40)) + b"\r\n" + draw(st.binary(max_size=60))
        return Reply(raw + b"\r\n\r\n" + body), False
    elif lie == "raw":
        return Reply(mutate(draw, response(body, status))), False
    honest = lie == "none" or (lie == "gzip" and headers[-1][1] == "identity")
    return Reply(response(body, status, headers=headers, length=length), hold=hold), honest


@st.composite
def probe_cases(draw: st.DrawFn) -> Case:
    """The answers of one server to one probe."""
    health_body = draw(st.sampled_from([b"", b"{}", b"ok", b"\x1b[2J"]))
    health, health_honest = draw(_framed(health_body))
    if draw(st.booleans()):
        version_body = _dumps({"version": draw(st.one_of(_TEXT, _NOT_A_STRING))})
    else:
        version_body = draw(_odd_json())
    version, _ = draw(_framed(version_body))
    cards: list[object] | None = None
    if draw(st.booleans()):
        cards = draw(st.lists(_card(), max_size=draw(st.sampled_from([5, 5, 600]))))
        models_body = _dumps({"object": "list", "data": cards})
    else:
        models_body = draw(_odd_json())
    models, models_honest = draw(_framed(models_body))
    replies = {"/health": health, "/version": version, "/v1/models": models}
    healthy = health.raw.startswith(b"HTTP/1.1 200") if health_honest else None
    honest_list = models_honest and cards is not None and models.raw.startswith(b"HTTP/1.1 200")
    listed = _expected_models(cards) if honest_list and cards is not None else None
    if healthy is False and health.raw.startswith(b"HTTP/1.1 404"):
        healthy = None  # no /health: up if the model list is
    return Case(replies, healthy, listed)


def _run(coroutine: Callable[[httpx.AsyncClient], Any]) -> Any:
    async def main() -> Any:
        async with make_client("http://127.0.0.1") as client:
            return await coroutine(client)

    return asyncio.run(main())


def _timed(what: str, data: object, run: Callable[[], Any]) -> Any:
    started = time.monotonic()
    try:
        result = run()
    except Exception as exc:  # the contract: a value, never an exception
        raise AssertionError(f"{what} raised {exc!r} on {data!r:.300}") from exc
    took = time.monotonic() - started
    assert took < TIMEOUT + SLACK, f"{what} took {took:.2f} s on {data!r:.300}"
    return result


def check_probe(case: Case) -> None:
    """probe never raises, ends within its timeout, and believes only what fits."""
    server = _hostile()
    server.answer(case.replies)
    seen: Probe = _timed(
        "probe", case, lambda: _run(lambda c: probe(c, server.url, None, timeout=TIMEOUT))
    )
    assert isinstance(seen.healthy, bool) and isinstance(seen.answered, bool)
    assert seen.answered or not seen.healthy
    assert seen.version is None or 0 < len(seen.version) <= MAX_VERSION_CHARS, seen.version
    assert len(seen.models) <= MAX_MODELS and len(set(seen.models)) == len(seen.models)
    assert all(isinstance(m, str) and 0 < len(m) <= MAX_ID_CHARS for m in seen.models)
    assert seen.error is None or (isinstance(seen.error, str) and len(seen.error) < 600)
    assert seen.healthy or seen.error, "down without a reason"
    assert math.isfinite(seen.checked_at)
    for text in (seen.version or "", *seen.models, seen.error or ""):
        assert visible(text).isprintable()
    if case.healthy is not None:
        assert seen.healthy == case.healthy, (seen, case)
    if case.models is not None:
        assert seen.models == case.models, (seen.models, case.models)


@st.composite
def metrics_cases(draw: st.DrawFn) -> tuple[Reply, Reply]:
    """Two readings of /metrics (for a rate between them)."""
    first = draw(metrics_texts()).encode("utf-8", "surrogatepass")
    later = draw(st.sampled_from([first, draw(metrics_texts()).encode("utf-8", "surrogatepass")]))
    return draw(_framed(first))[0], draw(_framed(later))[0]


def check_metrics(case: tuple[Reply, Reply]) -> None:
    """fetch_metrics never raises, ends in time; its figures and the row's are plausible."""
    server = _hostile()
    readings = []
    for reply in case:
        server.answer({"/metrics": reply})
        readings.append(
            _timed(
                "fetch_metrics",
                reply,
                lambda: _run(lambda c: fetch_metrics(c, server.url, timeout=TIMEOUT)),
            )
        )
    first, later = readings
    for snapshot in readings:
        if snapshot is not None:
            check_snapshot(snapshot)
            assert not snapshot.empty
    if later is not None:
        stats = MemberStats.between(first, later)
        assert stats.kv_cache is None or 0.0 <= stats.kv_cache <= 1.0
        rate = stats.generation_tokens_per_s
        assert rate is None or (math.isfinite(rate) and rate >= 0)
        assert len(stats.summary()) < 200, stats.summary()


@st.composite
def typed_urls(draw: st.DrawFn) -> str:
    """What a person (or a fleet file) might give as a server's address."""
    if draw(st.booleans()):
        return draw(st.text(max_size=60))
    scheme = draw(st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "", "http:/"]))
    host = draw(
        st.one_of(
            st.sampled_from(["gpu-box", "10.0.0.7", "[::1]", "[::zz]", "xn--a.com", "ü.de", ""]),
            st.text(max_size=20),
        )
    )
    port = draw(st.sampled_from(["", ":8000", ":0", ":99999", ":x", ":-1", ":" + "9" * 30]))
    path = draw(st.sampled_from(["", "/", "/v1", "/v1/", "/a/b", "?q", "#f", "/\x1b"]))
    return scheme + host + port + path


def check_member_url(text: str) -> None:
    """member_url accepts a URL httpx can ask, idempotently, or raises ValueError only."""
    try:
        url = member_url(text)
    except ValueError as exc:
        assert str(exc) and len(str(exc)) < 300
        return
    except Exception as exc:
        raise AssertionError(f"member_url raised {exc!r} on {text!r}") from exc
    assert member_url(url) == url, (text, url)
    assert url.startswith(("http://", "https://")) and not url.endswith("/")
    assert server_root(url) == url and server_root(url + "/v1/") == url
    with contextlib.suppress(httpx.InvalidURL, UnicodeError):  # IDNA refusals: probe says so
        httpx.Request("GET", f"{url}/health")


CHECKS: dict[str, tuple[Callable[[Any], None], Callable[[], st.SearchStrategy[Any]]]] = {
    "fleet_probe": (check_probe, probe_cases),
    "fleet_metrics": (check_metrics, metrics_cases),
    "member_url": (check_member_url, typed_urls),
}

# parser name -> (its check, its inputs), as bench/fuzz_campaign.py reads every strategies module
PARSERS: dict[str, tuple[Callable[[Any], None], st.SearchStrategy[Any]]] = {
    name: (check, strategy()) for name, (check, strategy) in CHECKS.items()
}
