"""The endpoint client: the SSE parser on bytes, then probe and stream_chat against real servers.

The servers are tests/fakes/fake_openai.py (an OpenAI-compatible stand-in with fault modes,
streaming over a real loopback socket) and, once, tests/fakes/fake_vllm.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.fakes.fake_openai import FakeOpenAI, word

from vllm_console.core.endpoint.client import (
    ChatEvent,
    ChatParser,
    Delta,
    Done,
    Usage,
    make_client,
    probe,
    server_root,
    stream_chat,
)
from vllm_console.core.endpoint.metrics import fetch_metrics
from vllm_console.core.endpoint.sse import decode_rate

ROOT = Path(__file__).resolve().parents[2]
HI = [{"role": "user", "content": "hi"}]
Http = httpx.AsyncClient
Fake = FakeOpenAI


def answer(n: int) -> str:
    return "".join(word(i) for i in range(n))


def sse(*objs: object) -> bytes:
    return b"".join(b"data: %s\n\n" % json.dumps(o).encode() for o in objs)


def chunk(content: str | None = None, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    if content is not None:
        delta["content"] = content
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


STREAM = (
    sse(chunk("", role="assistant"), chunk("Hel"), chunk("lo", "stop"))
    + sse({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
    + b"data: [DONE]\n\n"
)


def events_of(parser: ChatParser, *pieces: bytes) -> list[Delta | Usage]:
    out = [e for piece in pieces for e in parser.feed(piece)]
    return out + parser.end()


# --- the parser, on bytes ---------------------------------------------------------------


def test_parser_gives_the_same_events_however_the_bytes_are_split() -> None:
    whole = events_of(ChatParser(), STREAM)
    assert whole == [Delta("Hel"), Delta("lo"), Usage(3, 2, None)]
    assert events_of(ChatParser(), *(STREAM[i : i + 1] for i in range(len(STREAM)))) == whole
    parser = ChatParser()
    assert events_of(parser, STREAM.replace(b"\n", b"\r\n")) == whole
    assert parser.done and parser.malformed == 0 and parser.finish_reason == "stop"
    assert events_of(ChatParser(), STREAM.replace(b"\n", b"\r")) == whole


def test_parser_skips_comments_and_counts_what_it_cannot_use() -> None:
    parser = ChatParser()
    junk = (
        b": keep-alive\n\nid: 7\nretry: 100\ndata:" + json.dumps(chunk("a")).encode() + b"\n\n"
        b"data: {not json\n\nno colon here\n\ndata: [1, 2]\n\nnonsense: field\n\n"
        + sse({"choices": {"0": 1}}, chunk(None, delta_is="odd"), {"choices": [{"delta": 5}]})
        + sse({"choices": [{"delta": {"content": 12}}]}, chunk("b", "stop"))
    )
    assert events_of(parser, junk) == [Delta("a"), Delta("b")]
    assert parser.malformed == 6  # not json, no colon, a list, unknown field, dict, int delta
    stats = parser.stats("m")
    assert stats.ok and stats.malformed_lines == 6 and stats.tokens == 2


def test_parser_survives_hostile_payloads() -> None:
    parser = ChatParser()
    nested = b"data: " + b"[" * 100_000 + b"\n\n"  # past the JSON decoder's recursion limit
    huge = sse({"choices": [], "usage": {"completion_tokens": -5}})
    digits = b'data: {"choices": [], "usage": {"prompt_tokens": ' + b"9" * 4000 + b"}}\n\n"
    assert events_of(parser, nested, huge, digits, STREAM) == [
        Usage(None, None, None),
        Usage(None, None, None),  # 4,000 digits is no count
        Delta("Hel"),
        Delta("lo"),
        Usage(3, 2, None),
    ]
    assert parser.malformed == 1 and parser.stats("m").tokens == 2


def test_a_long_line_in_small_pieces_costs_its_length_not_its_square() -> None:
    parser = ChatParser()
    line = b"data: " + json.dumps(chunk("x" * 400_000)).encode()
    started = time.perf_counter()
    for i in range(0, len(line), 8):
        assert parser.feed(line[i : i + 8]) == []
    assert parser.feed(b"\n\n") == [Delta("x" * 400_000)]
    assert time.perf_counter() - started < 1.0  # joining every piece took 8 s here


def test_parser_joins_data_lines_and_reads_lines_a_server_forgot_to_separate() -> None:
    parser = ChatParser()
    assert events_of(parser, b'data: {"choices": [{"delta":\ndata: {"content": "x"}}]}\n\n') == [
        Delta("x")
    ]
    first, second = (json.dumps(chunk(text)).encode() for text in "ab")
    glued = b"data: " + first + b"\ndata: " + second + b"\n\n"
    assert events_of(ChatParser(), glued) == [Delta("a"), Delta("b")]


@pytest.mark.parametrize(
    "payload",
    [
        b'data: {"error": {"message": "boom", "type": "InternalServerError"}}\n\n',
        b'data: {"object": "error", "message": "boom", "type": "InternalServerError"}\n\n',
        b'event: error\ndata: {"message": "boom", "type": "InternalServerError"}\n\n',
    ],
)
def test_parser_reports_an_error_object_and_keeps_the_partial_answer(payload: bytes) -> None:
    parser = ChatParser()
    events_of(parser, sse(chunk("part")), payload, b"data: [DONE]\n\n")
    stats = parser.stats("m")
    assert stats.error == "server error: boom (InternalServerError)"
    assert not stats.ok and not stats.dropped and "".join(parser.text) == "part"


def test_stats_count_chunks_without_usage_and_see_a_stream_that_just_stops() -> None:
    ticks = iter([0.0, 1.0, 1.5, 2.0, 2.5, 3.0])
    parser = ChatParser(clock=lambda: next(ticks))
    events_of(parser, sse(chunk("a"), chunk("b"), chunk("c")))
    stats = parser.stats("m")
    assert (stats.ttft_s, stats.tokens, stats.tokens_per_s) == (1.0, 3, 2.0)
    assert stats.dropped and stats.error == "the stream ended before the answer finished"
    assert stats.finish_reason is None and stats.completion_tokens is None


@pytest.mark.parametrize(
    ("tokens", "first", "last", "expected"),
    [
        (1000, 1.0, 5.0, (999 / 4.0, False)),  # spread over 4 s: a decode rate
        (1000, 4.0, 4.03, (None, True)),  # 33,300 tokens/s: handed over together
        (40, 2.0, 2.0, (None, True)),  # all in one read
        (12, 1.0, 1.001, (11 / 0.001, False)),  # too few to tell
        (1, 1.0, 1.0, (None, False)),
        (5, None, None, (None, False)),
    ],
)
def test_a_rate_no_stream_decodes_at_is_no_rate(
    tokens: int, first: float | None, last: float | None, expected: tuple[float | None, bool]
) -> None:
    rate, held = decode_rate(tokens, first, last)
    assert held is expected[1]
    assert rate == (None if expected[0] is None else pytest.approx(expected[0]))


def test_an_answer_that_arrives_all_at_once_has_no_decode_rate() -> None:
    ticks = iter([0.0] + [3.0] * 60)
    parser = ChatParser(clock=lambda: next(ticks))
    events_of(parser, b"".join(sse(chunk(word(i))) for i in range(40)), sse(chunk(None, "stop")))
    stats = parser.stats("m")
    assert stats.ok and (stats.ttft_s, stats.tokens, stats.tokens_per_s) == (3.0, 40, None)
    assert stats.held_back and stats.to_json()["held_back"] is True
    assert "arrived all at once (no decode rate)" in stats.summary()


def test_reasoning_deltas_are_told_apart() -> None:
    parser = ChatParser()
    got = events_of(parser, sse(chunk(reasoning_content="hmm"), chunk("yes", "stop")))
    assert got == [Delta("hmm", reasoning=True), Delta("yes")]
    assert "".join(parser.reasoning) == "hmm" and "".join(parser.text) == "yes"


def test_server_root_drops_v1() -> None:
    assert server_root("http://h:8000/v1/") == "http://h:8000"
    assert server_root("http://h:8000/api") == "http://h:8000/api"


# --- against a real server --------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["fake-model", "other"], tokens=12) as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client("http://127.0.0.1") as http:
        yield http


async def chat(
    client: Http, fake: Fake, model: str = "fake-model", **kw: Any
) -> tuple[list[ChatEvent], Done]:
    key = kw.pop("key", None)
    events = [e async for e in stream_chat(client, fake.base_url, key, model, HI, **kw)]
    last = events[-1]
    assert isinstance(last, Done) and not any(isinstance(e, Done) for e in events[:-1])
    return events, last


async def test_a_normal_stream_gives_deltas_usage_and_stats(client: Http, fake: Fake) -> None:
    events, done = await chat(client, fake, temperature=0.2, top_p=0.9)
    assert [e.text for e in events if isinstance(e, Delta)] == [word(i) for i in range(12)]
    assert Usage(7, 12, 19) in events  # the usage chunk with empty choices
    stats = done.stats
    assert done.text == answer(12) and stats.ok and stats.finish_reason == "stop"
    assert (stats.tokens, stats.prompt_tokens, stats.http_status) == (12, 7, 200)
    assert stats.ttft_s is not None and 0 < stats.ttft_s < 2 and stats.tokens_per_s
    sent = fake.requests[-1]
    assert sent["stream"] and sent["stream_options"] == {"include_usage": True}
    assert (sent["messages"], sent["temperature"], sent["top_p"]) == (HI, 0.2, 0.9)


async def test_without_usage_tokens_are_counted_from_chunks(client: Http, fake: Fake) -> None:
    events, done = await chat(client, fake, include_usage=False)
    assert not any(isinstance(e, Usage) for e in events)
    assert done.stats.tokens == 12 and done.stats.completion_tokens is None


async def test_a_buffered_answer_is_timed_and_said_to_have_come_at_once(
    client: Http, fake: Fake
) -> None:
    fake.mode, fake.first_token_delay, fake.tokens = "buffered", 0.3, 200
    _, done = await chat(client, fake)
    stats = done.stats
    assert done.text == answer(200) and stats.ok and stats.tokens == 200
    assert stats.ttft_s is not None and stats.ttft_s >= 0.25
    assert stats.held_back and stats.tokens_per_s is None


async def test_a_slow_first_token_is_timed_not_timed_out(client: Http, fake: Fake) -> None:
    fake.mode, fake.first_token_delay = "slow_first", 0.6
    _, done = await chat(client, fake, read_timeout=3)
    assert done.stats.ok and done.stats.ttft_s is not None and done.stats.ttft_s >= 0.55


async def test_silence_longer_than_the_read_timeout_ends_the_stream(
    client: Http, fake: Fake
) -> None:
    fake.mode, fake.first_token_delay = "slow_first", 2.0
    started = time.monotonic()
    _, done = await chat(client, fake, read_timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert done.stats.dropped
    assert done.stats.error == "the server sent nothing for 0.3 s (read timeout)"


async def test_an_error_mid_stream_keeps_the_partial_answer(client: Http, fake: Fake) -> None:
    fake.mode = "error_mid"
    _, done = await chat(client, fake)
    assert done.text == answer(3) and not done.stats.ok and not done.stats.dropped
    assert done.stats.error == "server error: EngineCore died (InternalServerError)"


async def test_malformed_lines_are_skipped_and_counted(client: Http, fake: Fake) -> None:
    fake.mode = "malformed"
    _, done = await chat(client, fake)
    assert done.text == answer(12) and done.stats.ok and done.stats.malformed_lines == 3


async def test_keepalive_comments_are_ignored(client: Http, fake: Fake) -> None:
    fake.mode = "keepalive"
    _, done = await chat(client, fake)
    assert done.text == answer(12) and done.stats.ok and done.stats.malformed_lines == 0


async def test_a_dropped_connection_is_reported_with_the_partial_text(
    client: Http, fake: Fake
) -> None:
    fake.mode = "drop"
    _, done = await chat(client, fake)
    assert done.text == answer(3) and done.stats.dropped
    assert done.stats.error == "the server closed the connection mid-answer"


@pytest.mark.parametrize("mode", ["no_done", "crlf"])
async def test_streams_without_done_or_with_crlf_are_whole(
    client: Http, fake: Fake, mode: str
) -> None:
    fake.mode = mode
    _, done = await chat(client, fake)
    assert done.text == answer(12) and done.stats.ok


async def test_a_very_long_answer(client: Http, fake: Fake) -> None:
    _, done = await chat(client, fake, max_tokens=5000)
    assert done.text == answer(5000) and done.stats.tokens == 5000
    assert done.stats.finish_reason == "length" and done.stats.ok


async def test_401_and_an_unknown_model_are_errors_not_exceptions(client: Http) -> None:
    with FakeOpenAI(api_key="sesame") as fake:
        _, done = await chat(client, fake, key="wrong")
        assert (done.stats.http_status, done.stats.error) == (401, "API key rejected (HTTP 401)")
        _, done = await chat(client, fake, key="sesame", model="nope")
        assert done.stats.http_status == 404 and not done.stats.dropped
        assert done.stats.error == "HTTP 404: The model `nope` does not exist."
        _, done = await chat(client, fake, key="sesame")
        assert done.stats.ok


async def test_no_server_is_a_done_with_a_reason(client: Http) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        url = f"http://127.0.0.1:{port}/v1"
        events = [e async for e in stream_chat(client, url, None, "m", HI)]
    assert len(events) == 1 and isinstance(events[0], Done)
    assert events[0].stats.error == "cannot connect (connection refused)"


async def test_closing_the_stream_closes_the_connection(client: Http, fake: Fake) -> None:
    fake.mode, fake.token_delay = "endless", 0.01
    stream = stream_chat(client, fake.base_url, None, "fake-model", HI)
    async with contextlib.aclosing(stream):
        async for event in stream:
            if isinstance(event, Delta) and event.text == word(3):
                assert not fake.hangups.is_set()
                break
    assert await asyncio.to_thread(fake.hangups.wait, 5), "the server kept streaming"


async def test_cancelling_the_consumer_task_closes_the_connection(client: Http, fake: Fake) -> None:
    fake.mode, fake.token_delay = "endless", 0.01
    seen = asyncio.Event()

    async def consume() -> None:
        async for event in stream_chat(client, fake.base_url, None, "fake-model", HI):
            if isinstance(event, Delta) and event.text == word(3):
                seen.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(seen.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(fake.hangups.wait, 5), "the server kept streaming"


# --- probe ------------------------------------------------------------------------------


async def test_probe_a_vllm_server(fake: Fake) -> None:
    status = await probe(fake.base_url, None, "fake-model")
    assert status.ok and status.reachable and status.is_vllm and status.healthy
    assert status.version == "0.32.0" and status.model_ids == ("fake-model", "other")
    assert status.models[0].max_model_len == 4096 and status.problems == status.warnings == ()
    assert status.serves("other") and "vLLM 0.32.0" in status.summary()


async def test_probe_names_the_served_models_when_the_expected_is_not(fake: Fake) -> None:
    status = await probe(fake.base_url, None, "missing")
    assert not status.ok and status.serves("missing") is False
    assert status.problems == ("model 'missing' is not served here; served: fake-model, other",)


async def test_probe_tells_another_openai_server_from_vllm() -> None:
    with FakeOpenAI(vllm=False) as fake:
        status = await probe(fake.base_url)
    assert status.ok and not status.is_vllm and status.version is None
    assert status.models[0].max_model_len is None and "not a vLLM server" in status.warnings[0]


async def test_probe_says_api_key_rejected() -> None:
    with FakeOpenAI(api_key="sesame") as fake:
        wrong, missing, right = [await probe(fake.base_url, key) for key in ("x", None, "sesame")]
    assert wrong.key_rejected
    assert wrong.problems == ("API key rejected (HTTP 401): check VLLM_API_KEY",)
    assert missing.problems[0].endswith("no key was sent: set VLLM_API_KEY")
    assert wrong.is_vllm and wrong.models_listed is False and wrong.serves("m") is None
    assert right.ok and not right.key_rejected


async def test_probe_hints_at_a_missing_v1(fake: Fake) -> None:
    status = await probe(fake.base_url.removesuffix("/v1"))
    assert status.problems == (
        f"{server_root(fake.base_url)}/models answered HTTP 404, not a model list "
        "(does the base URL need /v1?)",
    )


async def test_probe_of_nothing_is_a_calm_value_at_once() -> None:
    # A refused connection is an answer: the probe must not sit out its timeout. The timeout
    # is made long and the bound a fraction of it, so a busy machine cannot fail this.
    started = time.monotonic()
    status = await probe("http://127.0.0.1:9/v1", None, "m", timeout=120)
    assert time.monotonic() - started < 30
    assert not status.reachable and not status.ok
    assert status.problems == ("cannot connect (connection refused)",)
    assert status.summary().endswith("/v1: unreachable (cannot connect (connection refused))")


async def test_the_vllm_stand_in_probes_chats_and_gives_metrics(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "FAKE_VLLM_DELAY": "0.1"}
    cmd = [sys.executable, str(ROOT / "tests/fakes/fake_vllm.py"), "serve", "Org/Tiny"]
    cmd += ["--port", str(port), "--served-model-name", "tiny", "--api-key", "k"]
    with (tmp_path / "log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}/v1"
        for _ in range(200):
            status = await probe(base, "k", "tiny", timeout=0.5)
            if status.reachable:
                break
            await asyncio.sleep(0.05)
        assert status.ok and status.is_vllm and status.model_ids == ("tiny",), status
        async with make_client(base) as http:
            events = [e async for e in stream_chat(http, base, "k", "tiny", HI)]
            metrics = await fetch_metrics(http, base)
        done = events[-1]
        assert isinstance(done, Done) and done.stats.ok and done.text.startswith("Hello!")
        assert done.stats.tokens == done.stats.completion_tokens == 9
        assert metrics.problems == () and metrics.generation_tokens == 9
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def test_the_sse_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """bench/bench_sse.py on 200 events, so that it cannot rot; no timing is asserted."""
    pytest.importorskip("openai")
    spec = importlib.util.spec_from_file_location("bench_sse", ROOT / "bench" / "bench_sse.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--events", "200", "--runs", "1"]) in (0, 1)
    out = capsys.readouterr().out
    assert "client" in out and "µs/event" in out and "for 200 events" in out
    rows = [line.split()[:2] for line in out.splitlines() if line.strip()]
    assert ["vllm-console", "200"] in rows and ["openai", "200"] in rows


async def test_an_endless_error_answer_is_read_only_so_far(client: Http) -> None:
    """A server answering 500 with a body that never ends: the chat reads its start (for the
    message) and hangs up, and so does the benchmark's request."""
    from vllm_console.core.bench.stream import request_once

    sent = 0

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await reader.readuntil(b"\r\n\r\n")
        head = b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
        writer.write(head + b'10\r\n{"error": "boom"\r\n')
        piece = b"x" * 65536
        try:
            while sent < 256 * 1024 * 1024:
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
                sent += len(piece)
        except (ConnectionError, OSError):
            pass
        writer.close()

    server = await asyncio.start_server(endless, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    async with server:
        events = [e async for e in stream_chat(client, url, None, "m", HI)]
        done = events[-1]
        assert isinstance(done, Done) and done.stats.http_status == 500
        assert done.stats.error == "HTTP 500: Internal Server Error"  # cut short: not JSON
        result = await request_once(client, f"{url}/completions", {"model": "m"}, {})
        assert result.error is not None and "500" in result.error
    assert sent < 32 * 1024 * 1024  # what the socket buffers took, not the endless rest
