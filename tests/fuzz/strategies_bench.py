"""Fuzzing the benchmark's parsers of outside input: completion SSE streams (fed in random
pieces), `vllm bench serve`'s result JSON, `/metrics` counters, the archive's records,
ShareGPT files, what a person types into the Bench form, exports of hostile records, and
HTTP answers as the load runner's own connection reads them.
From honest shapes to lies: wrong types, NaN and huge numbers, nesting a hundred thousand
deep, bytes mutated as strategies_endpoint does. A check fails when a parser raises what it
should not, or returns figures no run could have (negative, NaN, past the limits), or a
result whose requests do not add up.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from tests.fuzz.strategies_endpoint import NUMBERS, metrics_texts, mutate, timed
from vllm_console.core.bench.archive import parse_saved
from vllm_console.core.bench.arrivals import arrival_times
from vllm_console.core.bench.counters import between, parse_counters
from vllm_console.core.bench.export import render, to_csv, to_markdown
from vllm_console.core.bench.form import (
    MAX_LEVELS,
    BadArgument,
    parse_burstiness,
    parse_count,
    parse_levels,
    parse_rate,
)
from vllm_console.core.bench.prompts import sharegpt_prompts
from vllm_console.core.bench.stats import StepResult, step_from_json
from vllm_console.core.bench.stream import CompletionParser
from vllm_console.core.bench.sweep import BenchConfig, BenchRecord
from vllm_console.core.bench.vllm_bench import BenchFailure, parse_result
from vllm_console.core.bench.wire import Answer, WireError

LIMIT = 1e15
ODD = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(), st.text(max_size=8),
    st.sampled_from(NUMBERS), st.lists(st.integers(), max_size=3), st.just({"a": 1}),
)  # fmt: skip


def _plausible_step(step: StepResult) -> None:
    for name, value in step.to_json().items():
        if isinstance(value, float | int) and not isinstance(value, bool):
            assert math.isfinite(value) and 0 <= value <= LIMIT, (name, value)


# --- completion streams -------------------------------------------------------------------


def _event(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["text", "text", "usage", "done", "error", "odd", "comment"]))
    if kind == "text":
        choice = {"index": 0, "text": draw(st.text(max_size=5)), "finish_reason": None}
        if draw(st.booleans()):
            choice["finish_reason"] = "length"
        return b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n"
    if kind == "usage":
        usage = {"prompt_tokens": draw(ODD), "completion_tokens": draw(ODD)}
        return (
            b"data: " + json.dumps({"choices": [], "usage": usage}, default=str).encode() + b"\n\n"
        )
    if kind == "done":
        return b"data: [DONE]\n\n"
    if kind == "error":
        return b'data: {"error": {"message": "boom"}}\n\n'
    if kind == "comment":
        return b": ping\n\n"
    return b"data: " + json.dumps({"choices": draw(ODD)}, default=str).encode() + b"\n\n"


@st.composite
def completion_streams(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    data = b"".join(_event(draw) for _ in range(draw(st.integers(0, 12))))
    if draw(st.booleans()):
        data = mutate(draw, data)
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=8))
    return data, sorted(cuts)


def check_stream(case: tuple[bytes, list[int]]) -> None:
    data, cuts = case

    def run() -> Any:
        parser = CompletionParser()
        start = 0
        for cut in [*cuts, len(data)]:
            parser.feed(data[start:cut])
            start = cut
        parser.end()
        return parser.result(None)

    result = timed("CompletionParser", data, run)
    if result.ok:
        assert 0 <= result.ttft_s <= result.latency_s
        assert all(gap >= 0 for gap in result.itl_s)
        assert 0 <= result.output_tokens <= LIMIT and 0 <= result.prompt_tokens <= LIMIT
    else:
        assert result.error


# --- vllm bench serve's result JSON -------------------------------------------------------

HONEST = {
    "duration": 2.5, "completed": 8, "failed": 0, "total_input_tokens": 256,
    "total_output_tokens": 128, "request_throughput": 3.2, "output_throughput": 51.2,
    "total_token_throughput": 153.6, "mean_ttft_ms": 20.0, "median_ttft_ms": 19.0,
    "p50_ttft_ms": 19.0, "p99_ttft_ms": 40.0, "median_tpot_ms": 5.0, "p50_tpot_ms": 5.0,
    "median_itl_ms": 5.0, "p50_itl_ms": 5.0, "p99_itl_ms": 9.0, "median_e2el_ms": 95.0,
    "p50_e2el_ms": 95.0, "mean_tpot_ms": 5.0, "mean_itl_ms": 5.0, "mean_e2el_ms": 96.0,
    "errors": [""] * 8,
}  # fmt: skip


@st.composite
def result_texts(draw: st.DrawFn) -> bytes:
    data: dict[str, Any] = dict(HONEST)
    for key in draw(st.lists(st.sampled_from(sorted(HONEST)), max_size=4)):
        if draw(st.booleans()):
            data[key] = draw(ODD)
        else:
            data.pop(key, None)
    text = json.dumps(data, default=str).encode()
    return mutate(draw, text) if draw(st.booleans()) else text


def check_result(raw: bytes) -> None:
    def run() -> StepResult | None:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            return None
        try:
            return parse_result(data, 4, 8)
        except BenchFailure as exc:
            assert exc.finding.startswith("vllm bench serve")
            return None

    step = timed("parse_result", raw, run)
    if step is not None:
        _plausible_step(step)
        assert len(step.errors) <= 5


# --- /metrics counters, archive records, ShareGPT ------------------------------------------


@st.composite
def counter_texts(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(["vllm:request_success_total", "vllm:generation_tokens_total",
                                 "vllm:time_to_first_token_seconds_sum",
                                 "vllm:inter_token_latency_seconds_count",
                                 "vllm:request_prefill_time_seconds_sum"]))  # fmt: skip
    line = f'{name}{{finished_reason="length"}} {draw(st.sampled_from(NUMBERS)) or "1"}\n'
    return draw(st.one_of(metrics_texts(), st.just(line)))


def check_counters(text: str) -> None:
    reading = timed("parse_counters", text, lambda: parse_counters(text))
    sums_counts = [v for pair in reading.latencies for v in pair]
    for value in (reading.requests, reading.generation_tokens, reading.prompt_tokens, *sums_counts):
        assert value is None or (math.isfinite(value) and 0 <= value <= LIMIT * 1e4)
    counts = between(reading, reading)
    if counts is None:
        return
    means = (counts.ttft_mean_ms, counts.itl_mean_ms, counts.e2el_mean_ms, counts.prefill_mean_ms)
    assert means == (None,) * 4  # nothing happened between a reading and itself: no count


def honest_step() -> dict[str, Any]:
    step = {**HONEST, "concurrency": 4, "source": "vllm", "num_prompts": 8}
    step.update(ttft_p50_ms=19.0, ttft_p99_ms=40.0, tpot_p50_ms=5.0, itl_p50_ms=5.0)
    step.update(itl_p99_ms=9.0, e2el_p50_ms=95.0, duration_s=2.5, errors=[], server=None)
    return step


@st.composite
def record_texts(draw: st.DrawFn) -> bytes:
    step = honest_step()
    for key in draw(st.lists(st.sampled_from(sorted(step)), max_size=3)):
        step[key] = draw(ODD)
    record = {"kind": "bench", "started": draw(ODD), "status": "done", "steps": [step]}
    if draw(st.booleans()):
        record["config"] = {"request_rate": draw(ODD), "burstiness": draw(ODD)}
    if draw(st.booleans()):
        record["started"] = 1.7e9
    text = json.dumps(record, default=str).encode()
    return mutate(draw, text) if draw(st.booleans()) else text


def check_record(raw: bytes) -> None:
    saved = timed("parse_saved", raw, lambda: parse_saved(Path("x-bench-y"), raw))
    if saved is not None:
        for step in saved.steps:
            _plausible_step(step)
        line = saved.summary()
        assert not re.search(r"\bnan\b|\binf\b|at -", line), line  # no rate no run had


@st.composite
def sharegpt_texts(draw: st.DrawFn) -> Any:
    turn = st.fixed_dictionaries({"from": st.sampled_from(["human", "gpt", 3]), "value": ODD})
    item = st.one_of(st.fixed_dictionaries({"conversations": st.lists(turn, max_size=3)}), ODD)
    return draw(st.one_of(st.lists(item, max_size=5), ODD))


def check_sharegpt(data: Any) -> None:
    prompts = timed("sharegpt_prompts", data, lambda: sharegpt_prompts(data, 3))
    assert len(prompts) <= 3 and all(isinstance(p, str) and p.strip() for p in prompts)


@st.composite
def form_texts(draw: st.DrawFn) -> str:
    honest = st.lists(st.integers(-5, 5000).map(str), max_size=40).map(",".join)
    numbers = st.floats(allow_nan=True, allow_infinity=True).map(str)
    odd = st.sampled_from(["", ",", "1,,2", "1e9", "inf", "-inf", "nan", "Infinity", "1e-400"])
    return draw(st.one_of(honest, numbers, st.text(max_size=30), odd))


def check_form(text: str) -> None:
    """What a person types into the Bench form: a checked value, or BadArgument naming it."""
    try:
        levels = parse_levels(text, "Concurrency")
        assert 1 <= len(levels) <= MAX_LEVELS and all(1 <= c <= 4096 for c in levels)
    except BadArgument as exc:
        assert str(exc).startswith("Concurrency: ")
    try:
        assert 1 <= parse_count("Prompts", text, 1000) <= 1000
    except BadArgument as exc:
        assert str(exc).startswith("Prompts: ")
    try:
        rate = parse_rate(text, "Requests/s")
        assert rate == math.inf or 0.001 <= rate <= 1e6
        times = arrival_times(50, rate, 1.0, seed=len(text))
        assert len(times) == 50 and all(0.0 <= t < math.inf for t in times)
        assert times == sorted(times)
    except BadArgument as exc:
        assert str(exc).startswith("Requests/s: ")
    try:
        shape = parse_burstiness(text, "Burstiness")
        assert shape == math.inf or 0.01 <= shape <= 1000
        times = arrival_times(50, 10.0, shape)
        assert times == sorted(times) and times[-1] == pytest.approx(5.0)
    except BadArgument as exc:
        assert str(exc).startswith("Burstiness: ")


@st.composite
def hostile_records(draw: st.DrawFn) -> BenchRecord:
    text = st.text(max_size=12) | st.sampled_from(["=cmd|' /C calc'!A0", "a|b", "\x1b[2J", "@x"])
    step = step_from_json({**honest_step(), "mismatch": draw(text)})
    config = BenchConfig(draw(text), launch_argv=(draw(text),))
    steps = (replace(step, source=draw(text)),)
    return BenchRecord(config, draw(text), 1.7e9, 1.7e9, model=draw(text), source=draw(text),
                       steps=steps, findings=(draw(text),))  # fmt: skip


def check_export(record: BenchRecord) -> None:
    """Exports of a record whose strings are hostile: Markdown shows no control character and
    keeps one row per step; CSV reads back with every text cell defused; JSON round-trips."""
    md = to_markdown(record)
    assert all(ch.isprintable() or ch == "\n" for ch in md), md
    assert sum(line.startswith("| 4 |") for line in md.splitlines()) == 1
    rows = list(csv.reader(io.StringIO(to_csv(record), newline="")))
    assert len(rows) == 2
    for cell in (rows[1][0], rows[1][1], rows[1][-1]):
        assert cell[:1] not in ("=", "+", "-", "@"), cell
    assert json.loads(render(record, "JSON"))["model"] == record.model


@st.composite
def wire_answers(draw: st.DrawFn) -> tuple[str, bytes, bytes, list[int]]:
    """An HTTP answer as the load runner's connection reads it: chunked, with a length, or
    until close, cut into reads anywhere; sometimes mutated."""
    body = draw(st.binary(max_size=300))
    kind = draw(st.sampled_from(["chunked", "length", "close"]))
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    if kind == "chunked":
        cuts = sorted(draw(st.lists(st.integers(1, max(len(body), 1)), max_size=6)))
        parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        ext = draw(st.sampled_from([b"", b";x=1"]))
        framed = b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in parts if p)
        data = head + b"transfer-encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"
    elif kind == "length":
        data = head + b"content-length: %d\r\n\r\n" % len(body) + body
    else:
        data = head + b"\r\n" + body
    if draw(st.integers(0, 3)) == 0:
        kind, data = "mutated", mutate(draw, data)
    reads = sorted(draw(st.lists(st.integers(0, len(data)), max_size=10)))
    return kind, body, data, reads


def run_wire(data: bytes, reads: list[int]) -> tuple[list[bytes], object]:
    """`data` fed to a connection's reader in pieces cut at `reads`, then the connection
    closed: the body pieces delivered, and (status, error body, keep) or the WireError."""

    async def run() -> tuple[list[bytes], object]:
        answer = Answer(5.0)
        got: list[bytes] = []
        answer.reset(lambda piece, _now: got.append(piece))
        done = answer.done = asyncio.get_running_loop().create_future()
        start = 0
        for cut in [*reads, len(data)]:
            answer.data_received(data[start:cut])
            start = cut
        if not done.done():
            answer.connection_lost(None)
        try:
            return got, done.result()
        except WireError as exc:
            return got, exc

    return asyncio.run(run())


def check_wire(case: tuple[str, bytes, bytes, list[int]]) -> None:
    kind, body, data, reads = case
    got, outcome = timed("wire", data, lambda: run_wire(data, reads))
    if kind != "mutated":
        assert outcome == (200, b"", kind != "close"), outcome
        assert b"".join(got) == body
    else:
        assert isinstance(outcome, WireError | tuple), outcome


PARSERS: dict[str, tuple[Callable[[Any], None], st.SearchStrategy[Any]]] = {
    "bench_stream": (check_stream, completion_streams()),
    "bench_result": (check_result, result_texts()),
    "bench_counters": (check_counters, counter_texts()),
    "bench_record": (check_record, record_texts()),
    "bench_sharegpt": (check_sharegpt, sharegpt_texts()),
    "bench_form": (check_form, form_texts()),
    "bench_export": (check_export, hostile_records()),
    "bench_wire": (check_wire, wire_answers()),
}
