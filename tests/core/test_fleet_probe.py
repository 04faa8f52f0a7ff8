"""Probing a fleet member: up, down, slow, hostile; its /metrics; the state a poller keeps.

The servers are real loopback servers: tests/fakes/fake_openai.py (an honest OpenAI-compatible
stand-in) and tests/fakes/hostile_http.py (exactly the bytes a test gives it: lying headers,
endless or dripping bodies, JSON of the wrong types). The property tests are in
tests/fuzz/test_fleet_probe_parsers.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.hostile_http import HostileServer, Reply, response
from tests.fakes.net import free_port

from vllm_console.core.endpoint.capped import MAX_BODY_BYTES
from vllm_console.core.endpoint.client import make_client
from vllm_console.core.endpoint.client import probe as endpoint_probe
from vllm_console.core.endpoint.metrics import fetch_metrics as endpoint_metrics
from vllm_console.core.endpoint.metrics import parse_metrics
from vllm_console.core.fleet.probe import (
    MAX_MODELS,
    MemberStats,
    Probe,
    RemoteState,
    fetch_metrics,
    member_url,
    probe,
)
from vllm_console.core.text import visible

TIMEOUT = 0.5
SLACK = 0.4  # a loaded 2-core machine; the bound itself is TIMEOUT
MODELS = b'{"object": "list", "data": [{"id": "tiny", "owned_by": "vllm"}]}'
HONEST = {
    "/health": Reply(response(b"")),
    "/version": Reply(response(b'{"version": "0.32.0"}')),
    "/v1/models": Reply(response(MODELS)),
}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client("http://127.0.0.1") as http:
        yield http


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        server.answer(HONEST)
        yield server


async def timed_probe(client: httpx.AsyncClient, url: str, key: str | None = None) -> Probe:
    started = time.monotonic()
    seen = await probe(client, url, key, timeout=TIMEOUT)
    took = time.monotonic() - started
    assert took < TIMEOUT + SLACK, f"the probe took {took:.2f} s"
    return seen


# --- honest servers ---------------------------------------------------------------------


async def test_a_vllm_server_is_up_with_its_version_and_models(client: httpx.AsyncClient) -> None:
    with FakeOpenAI(models=("tiny", "other")) as fake:
        for url in (fake.base_url, fake.base_url.removesuffix("/v1"), fake.base_url + "/"):
            seen = await timed_probe(client, url)
            assert seen.healthy and seen.answered and seen.error is None, url
            assert seen.version == "0.32.0" and seen.models == ("tiny", "other")
    assert abs(seen.checked_at - time.time()) < 5  # wall clock, for "down since 14:02:11"


async def test_an_openai_server_without_health_is_up_by_its_model_list(
    client: httpx.AsyncClient,
) -> None:
    with FakeOpenAI(vllm=False) as fake:
        seen = await timed_probe(client, fake.base_url)
    assert seen.healthy and seen.version is None and seen.models == ("fake-model",)


async def test_a_rejected_key_is_named_and_the_server_still_up(client: httpx.AsyncClient) -> None:
    with FakeOpenAI(api_key="sesame") as fake:
        wrong = await timed_probe(client, fake.base_url, "nope")
        right = await timed_probe(client, fake.base_url, "sesame")
    assert wrong.healthy and wrong.models == () and wrong.error == "API key rejected (HTTP 401)"
    assert right.healthy and right.models == ("fake-model",) and right.error is None


# --- down and slow ----------------------------------------------------------------------


async def test_nothing_listening_is_down_at_once(client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    seen = await probe(client, f"http://127.0.0.1:{free_port()}", None, timeout=TIMEOUT)
    assert time.monotonic() - started < 0.3
    assert not seen.healthy and not seen.answered and seen.models == () and seen.version is None
    assert seen.error == "cannot connect (connection refused)"


@contextlib.contextmanager
def unanswered_connects() -> Iterator[str]:
    """A port whose connects hang, as a host that drops packets does: its listen queue is
    full, so the kernel ignores further handshakes."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):
                filler = socket.socket()
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
                fillers.append(filler)
            yield f"http://127.0.0.1:{port}"
        finally:
            for filler in fillers:
                filler.close()


async def test_a_host_that_never_answers_costs_one_timeout(client: httpx.AsyncClient) -> None:
    with unanswered_connects() as url:
        seen = await timed_probe(client, url)
    assert not seen.healthy and not seen.answered
    assert seen.error == f"no answer within {TIMEOUT:g} s"


async def test_a_server_that_accepts_and_says_nothing_costs_one_timeout(
    client: httpx.AsyncClient,
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        seen = await timed_probe(client, f"http://127.0.0.1:{silent.getsockname()[1]}")
    assert not seen.answered and seen.error == f"no answer within {TIMEOUT:g} s"


async def test_a_slow_drip_is_cut_at_the_timeout(
    client: httpx.AsyncClient, hostile: HostileServer
) -> None:
    # httpx's read timeout (between chunks) would never trip: a byte every 50 ms
    drip = Reply(response(b"{}" + b" " * 200), piece=1, drip=0.05)
    hostile.answer({**HONEST, "/health": drip, "/v1/models": drip})
    seen = await timed_probe(client, hostile.url)
    assert not seen.healthy and seen.answered and seen.version == "0.32.0"
    assert seen.error == (
        f"/health: the answer did not end within {TIMEOUT:g} s; "
        f"/v1/models: the answer did not end within {TIMEOUT:g} s"
    )


# --- hostile answers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(b"\x00\xff not http\r\n\r\n"), "not an HTTP answer (illegal status line"),
        (Reply(b"HTTP/1.1 200 OK\r\ncontent-length: -4\r\n\r\n{}"), "not an HTTP answer (bad"),
        (Reply(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"), "not an HTTP"),
        (Reply(response(b"{}", length=50)), "the server closed the connection mid-answer"),
        (Reply(response(b"{}", length=50), hold=5), "the answer did not end within"),
        (Reply(response(b"x" * 10, length=10**11)), "the answer is over 1 MiB (content-length)"),
        (Reply(response(b"x" * 10, length=10**30)), "not an HTTP answer (bad Content-Length)"),
        (Reply(response(b"x" * (MAX_BODY_BYTES + 1))), "the answer is over 1 MiB (content-len"),
        (Reply(response(b"[1]" * (MAX_BODY_BYTES // 3 + 1), length="")), "the answer is over 1"),
        (
            Reply(response(b"\x1f\x8b", headers=(("content-encoding", "gzip"),))),
            "the answer came compressed",
        ),
    ],
)
async def test_broken_and_lying_answers_are_errors(
    client: httpx.AsyncClient, hostile: HostileServer, reply: Reply, error: str
) -> None:
    hostile.answer({**HONEST, "/health": reply})
    seen = await timed_probe(client, hostile.url)
    assert not seen.healthy and seen.answered and seen.models == ("tiny",)
    assert seen.error is not None and seen.error.startswith(f"/health: {error}"), seen.error


async def test_a_short_content_length_cuts_the_json(
    client: httpx.AsyncClient, hostile: HostileServer
) -> None:
    hostile.answer({**HONEST, "/v1/models": Reply(response(MODELS, length=20))})
    seen = await timed_probe(client, hostile.url)
    assert seen.healthy and seen.models == () and seen.error == "/v1/models: not a model list"


@pytest.mark.parametrize(
    ("version", "models", "want_version", "want_models"),
    [
        (b'{"version": 5}', b'{"data": "tiny"}', None, None),
        (b'{"version": {"a": 1}}', b'{"data": [{"id": 5}, {"id": null}, "x"]}', None, ()),
        (b'{"version": "' + b"9" * 500 + b'"}', b"[" * 100_000, None, None),
        (
            b'{"version": ' + b"9" * 5000 + b"}",
            b'{"data": [{"id": ' + b"9" * 5000 + b"}]}",
            None,
            None,
        ),
        (b'{"version": NaN}', b'{"data": [{"id": ""}, {"id": "ok"}, {"id": "ok"}]}', None, ("ok",)),
        (b'"0.32.0"', b'{"data": [{"id": "\\u001b[2J\\u202eevil"}]}', None, ("\x1b[2J\u202eevil",)),
        (
            b'{"version": "0.1\\u0007"}',
            b'{"data": [{"id": "a"}, 7, {"id": "b"}]}',
            "0.1\x07",
            ("a", "b"),
        ),
        (b"\xff\xfe{}", b'{"data": [{"id": "' + b"m" * 600 + b'"}, {"id": "m"}]}', None, ("m",)),
    ],
)
async def test_json_of_the_wrong_shape_is_believed_only_where_it_fits(
    client: httpx.AsyncClient,
    hostile: HostileServer,
    version: bytes,
    models: bytes,
    want_version: str | None,
    want_models: tuple[str, ...] | None,
) -> None:
    hostile.answer(
        {**HONEST, "/version": Reply(response(version)), "/v1/models": Reply(response(models))}
    )
    seen = await timed_probe(client, hostile.url)
    assert seen.healthy and seen.version == want_version
    assert seen.models == (want_models or ())
    assert (seen.error == "/v1/models: not a model list") == (want_models is None)
    for text in (seen.version or "", *seen.models, seen.error or ""):
        assert visible(text).isprintable()  # what a screen shows: escapes, not obeyed


async def test_a_long_model_list_is_capped(
    client: httpx.AsyncClient, hostile: HostileServer
) -> None:
    cards = [{"id": f"m{i}"} for i in range(MAX_MODELS * 3)]
    hostile.answer({**HONEST, "/v1/models": Reply(response(json.dumps({"data": cards})))})
    seen = await timed_probe(client, hostile.url)
    assert seen.models == tuple(f"m{i}" for i in range(MAX_MODELS))


async def test_the_probe_can_be_cancelled(client: httpx.AsyncClient) -> None:
    with unanswered_connects() as url:
        task = asyncio.ensure_future(probe(client, url, None, timeout=30))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# --- /metrics and a row's figures ---------------------------------------------------------


def metrics_text(generation: float, *, kv: float = 0.25) -> bytes:
    rows = {
        "vllm:num_requests_running": 2,
        "vllm:num_requests_waiting": 1,
        "vllm:kv_cache_usage_perc": kv,
        "vllm:generation_tokens_total": generation,
    }
    return "".join(f'{k}{{engine="0"}} {v}\n' for k, v in rows.items()).encode()


async def test_metrics_are_read_and_garbage_is_none(
    client: httpx.AsyncClient, hostile: HostileServer
) -> None:
    hostile.answer({"/metrics": Reply(response(metrics_text(100)))})
    snapshot = await fetch_metrics(client, hostile.url + "/v1", timeout=TIMEOUT)
    assert snapshot is not None and snapshot.requests_running == 2
    for reply in (
        Reply(response(b"<html>no</html>")),
        Reply(response(metrics_text(1) * 40_000)),  # 4 MB
        Reply(response(metrics_text(1), length=10**9)),
        Reply(response(metrics_text(1), length=500), hold=5),
    ):
        hostile.answer({"/metrics": reply})
        started = time.monotonic()
        assert await fetch_metrics(client, hostile.url, timeout=TIMEOUT) is None
        assert time.monotonic() - started < TIMEOUT + SLACK
    assert await fetch_metrics(client, f"http://127.0.0.1:{free_port()}") is None


def test_member_stats_take_gauges_from_the_latest_and_the_rate_from_two() -> None:
    first = parse_metrics(metrics_text(100).decode(), taken_at=10.0)
    later = parse_metrics(metrics_text(160, kv=7.0).decode(), taken_at=13.0)
    alone = MemberStats.between(None, first)
    assert (alone.running, alone.waiting, alone.kv_cache) == (2, 1, 0.25)
    assert alone.generation_tokens_per_s is None
    assert alone.summary() == "2 running · 1 waiting · KV cache 25 % · \N{EN DASH} tokens/s"
    stats = MemberStats.between(first, later)
    assert stats.generation_tokens_per_s == pytest.approx(20.0) and stats.kv_cache == 1.0
    restarted = MemberStats.between(later, parse_metrics(metrics_text(5).decode(), taken_at=16))
    assert restarted.generation_tokens_per_s is None  # a counter that went down


async def test_the_metrics_panel_and_the_chat_probe_read_capped_too(
    client: httpx.AsyncClient, hostile: HostileServer
) -> None:
    """core.endpoint's readers (the metrics panel's, the chat pane's probe) share the cap."""
    huge = Reply(response(b"vllm:num_requests_running 1\n" * 100_000, length=""))
    hostile.answer({**HONEST, "/metrics": huge, "/v1/models": huge})
    snapshot = await endpoint_metrics(client, hostile.url, timeout=TIMEOUT)
    assert snapshot.empty
    assert snapshot.problems == (f"{hostile.url}/metrics: the answer is over 1 MiB",)
    status = await endpoint_probe(hostile.url + "/v1", client=client, timeout=TIMEOUT)
    assert status.reachable and not status.models_listed
    assert status.problems == (f"{hostile.url}/v1/models: the answer is over 1 MiB",)


# --- the state a poller keeps -------------------------------------------------------------

UP = Probe(True, "0.32.0", ("tiny",), None, checked_at=1000.0, answered=True)


def test_remote_state_marks_down_since_and_last_answer() -> None:
    stats = MemberStats(1, 0, 0.5, 3.0)
    state = RemoteState.first(UP, stats)
    assert state.healthy and state.since == 1000 and state.stats == stats
    state = state.after(Probe(True, "0.32.0", ("tiny",), checked_at=1003.0, answered=True), stats)
    assert state.since == 1000 and state.last_answer == 1003
    refused = "cannot connect (connection refused)"
    down = state.after(Probe(False, error=refused, checked_at=1006.0), None)
    assert not down.healthy and down.since == 1006 and down.last_answer == 1003
    assert down.models == ("tiny",) and down.version == "0.32.0"  # what it served, kept
    assert down.stats is None and down.error == refused
    later = down.after(Probe(False, error=refused, checked_at=1043.0), None)
    assert later.since == 1006
    clock = time.strftime("%H:%M:%S", time.localtime(1006))
    assert later.describe(now=1043.0) == f"down since {clock}, last answer 40 s ago"
    back = later.after(UP.__class__(True, "0.33.0", ("big",), None, 1046.0, True), stats)
    assert back.healthy and back.since == 1046 and back.version == "0.33.0"
    never = RemoteState.first(Probe(False, error=refused, checked_at=1000.0))
    assert never.describe(now=1001.0).endswith(", no answer yet")


# --- what a person types ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "url"),
    [
        ("http://gpu-box:8000", "http://gpu-box:8000"),
        ("  https://gpu-box.lan/v1/ ", "https://gpu-box.lan"),
        ("HTTP://10.0.0.7:8000/v1", "http://10.0.0.7:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("https://example.com/serving/llama", "https://example.com/serving/llama"),
    ],
)
def test_member_urls_that_are_fine(typed: str, url: str) -> None:
    assert member_url(typed) == url


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "type the server's address"),
        ("gpu-box:8000", "start with http:// or https://, e.g. http://gpu-box:8000"),
        ("ftp://gpu-box", "ftp:// is not http:// or https://"),
        ("http://:8000", "no host"),
        ("http://gpu-box:99999", "the port must be a number from 1 to 65535"),
        ("http://gpu-box:0", "the port must be a number from 1 to 65535"),
        ("http://gpu-box:http", "the port must be a number from 1 to 65535"),
        ("http://gpu box:8000", "no spaces or control characters"),
        ("http://gpu-box\x1b[2J:8000", "no spaces or control characters"),
        ("http://me:secret@gpu-box", "no user or password in the address"),
        ("http://gpu-box/?a=1", "no ?query or #fragment"),
        ("http://gpu_box!:80", "'gpu_box!' is not a host name or an IP address"),
        ("http://[::zz]:80", "is not a host name or an IP address"),
    ],
)
def test_member_urls_that_are_not(typed: str, message: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        member_url(typed)
    assert message in str(caught.value)
