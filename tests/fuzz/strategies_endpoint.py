"""Fuzzing the parsers of `core.endpoint`: a chat answer's server-sent events and /metrics.

Each `check_<parser>(data)` feeds one input and raises AssertionError when the parser raises,
takes over LIMIT seconds, or returns something a screen could not show (a number no server
could have sent, a figure hundreds of digits long). The strategies start from what a vLLM
server sends (the chunks of tests/fakes/fake_openai.py, the families of fake_vllm.py's
/metrics) and mutate them: bytes flipped, dropped, repeated or inserted, numbers blown up to
thousands of digits, NaN and infinities, JSON nested a hundred thousand deep, label sets of
10,000 labels, and plain garbage. `CHECKS` pairs each check with its strategy for
bench/fuzz_campaign.py.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from hypothesis import strategies as st

from vllm_console.core.endpoint.metrics import (
    GENERATION,
    KV_USAGE,
    PREEMPTIONS,
    PREFIX_HITS,
    PREFIX_QUERIES,
    PROMPT,
    RUNNING,
    TTFT,
    WAITING,
    MetricsSnapshot,
    parse_metrics,
    rates,
)
from vllm_console.core.endpoint.sse import MAX_PLAUSIBLE, ChatParser

LIMIT = 1.0  # seconds per input
# Figures a server might put where a number belongs, from plain to absurd.
NUMBERS = [
    "0",
    "7",
    "-1",
    "1.5",
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "-Infinity",
    "+Inf",
    "-Inf",
    "nan",
    "9" * 400,
    "1" * 4301,
    "1" * 5000,
    "1e308",
    "4.9e-324",
    "0x10",
    "1_000",
    "",
]


def timed(what: str, data: object, run: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    try:
        result = run()
    except Exception as exc:  # the contract: a value or a problem, never an exception
        raise AssertionError(f"{what} raised {exc!r} on {data!r:.300}") from exc
    took = time.perf_counter() - started
    assert took < LIMIT, f"{what} took {took:.2f} s on {data!r:.300}"
    return result


def mutate(draw: st.DrawFn, data: bytes) -> bytes:
    """A few byte-level edits: what a broken proxy or a hostile server could send."""
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "drop", "insert", "repeat", "number", "nest"]))
        if kind == "flip" and where < len(data):
            data = (
                data[:where] + bytes([data[where] ^ draw(st.integers(1, 255))]) + data[where + 1 :]
            )
        elif kind == "drop":
            data = data[:where] + data[where + draw(st.integers(1, 40)) :]
        elif kind == "insert":
            data = data[:where] + draw(st.binary(max_size=30)) + data[where:]
        elif kind == "repeat":
            piece = data[where : where + draw(st.integers(1, 60))]
            data = data[:where] + piece * draw(st.integers(2, 50)) + data[where:]
        elif kind == "number":
            data = data[:where] + draw(st.sampled_from(NUMBERS)).encode() + data[where:]
        else:
            depth = draw(st.sampled_from([100, 5_000, 100_000]))
            data = data[:where] + draw(st.sampled_from([b"[", b'{"a":'])) * depth + data[where:]
    return data


# --- server-sent events -------------------------------------------------------------------


def _chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
    """One chunk as vLLM (and fake_openai.py) sends it."""
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [choice],
    }


@st.composite
def _sse_event(draw: st.DrawFn) -> bytes:
    kinds = ["content", "content", "reasoning", "finish", "usage", "error", "done"]
    kind = draw(st.sampled_from([*kinds, "comment", "field", "raw_number", "split"]))
    if kind == "content":
        payload = json.dumps(_chunk({"content": draw(st.text(max_size=40))}))
    elif kind == "reasoning":
        payload = json.dumps(_chunk({"reasoning_content": draw(st.text(max_size=20))}))
    elif kind == "finish":
        reason = draw(st.sampled_from(["stop", "length", "", "x" * 100]))
        payload = json.dumps(_chunk({}, reason))
    elif kind == "usage":
        usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
        payload = json.dumps({"id": "c", "choices": [], "usage": usage})
    elif kind == "error":
        error = {"message": draw(st.text(max_size=40)), "type": "InternalServerError", "code": 500}
        payload = json.dumps({"error": error})
    elif kind == "done":
        payload = "[DONE]"
    elif kind == "comment":
        return b": keep-alive\n\n"
    elif kind == "field":
        return draw(st.sampled_from([b"event: error\n", b"id: 3\n", b"retry: 10\n", b"bogus\n"]))
    elif kind == "raw_number":  # numbers json.dumps would never write
        number = draw(st.sampled_from(NUMBERS)) or "0"
        field = draw(st.sampled_from(["completion_tokens", "prompt_tokens", "total_tokens"]))
        payload = f'{{"choices": [], "usage": {{"{field}": {number}}}}}'
    else:  # one event's JSON over two `data:` lines
        text = json.dumps(_chunk({"content": "a"}))
        return b"data: " + text[:10].encode() + b"\ndata: " + text[10:].encode() + b"\n\n"
    return b"data: " + payload.encode("utf-8", "surrogatepass") + b"\n\n"


@st.composite
def sse_streams(draw: st.DrawFn) -> bytes:
    """A chat answer's bytes: real-looking events, mutated, or garbage."""
    shape = draw(st.sampled_from(["answer", "answer", "mutated", "garbage"]))
    if shape == "garbage":
        return draw(st.binary(max_size=600))
    role = b"data: " + json.dumps(_chunk({"role": "assistant", "content": ""})).encode() + b"\n\n"
    events = draw(st.lists(_sse_event(), max_size=12))
    data = role + b"".join(events)
    ending = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    if ending != b"\n":
        data = data.replace(b"\n", ending)
    return mutate(draw, data) if shape == "mutated" else data


def _sse_outcome(data: bytes, size: int) -> tuple[Any, ...]:
    ticks = itertools.count()
    parser = ChatParser(clock=lambda: next(ticks) * 0.001)
    events: list[Any] = []
    for start in range(0, len(data), size):
        events += parser.feed(data[start : start + size])
    events += parser.end()
    stats = parser.stats("m")
    stats.summary()
    json.dumps(stats.to_json())
    assert 0 <= stats.tokens <= MAX_PLAUSIBLE, stats.tokens
    for value in (stats.prompt_tokens, stats.completion_tokens):
        assert value is None or 0 <= value <= MAX_PLAUSIBLE, value
    assert stats.tokens_per_s is None or math.isfinite(stats.tokens_per_s)
    usage = parser.usage
    return (events, "".join(parser.text), stats.finish_reason, usage, stats.error, parser.done)


def check_sse(data: bytes) -> None:
    """ChatParser never raises, answers in time, and reads the same events however the bytes
    are cut into pieces (whole, a byte at a time, 7 bytes, 4 KB)."""
    sizes = [max(1, len(data)), 7, 4096] + ([1] if len(data) <= 2000 else [])
    outcomes = [timed("ChatParser", data, partial(_sse_outcome, data, size)) for size in sizes]
    assert all(o == outcomes[0] for o in outcomes[1:]), (
        f"chunking changed the events: {data!r:.300}"
    )


# --- /metrics -----------------------------------------------------------------------------

_FAMILIES = [
    (RUNNING, "gauge"),
    (WAITING, "gauge"),
    (KV_USAGE[0], "gauge"),
    (KV_USAGE[1], "gauge"),
    (PROMPT, "counter"),
    (GENERATION, "counter"),
    (PREEMPTIONS, "counter"),
    (PREFIX_HITS, "counter"),
    (PREFIX_QUERIES, "counter"),
]
_BOUNDS = ["0.01", "0.04", "0.16", "0.64", "2.56", "+Inf"]


@st.composite
def _labels(draw: st.DrawFn, extra: str = "") -> str:
    many = draw(st.sampled_from([0, 0, 0, 1, 10_000]))
    names = ['engine="0"', 'model_name="Org/Model"'] + [f'l{i}="v{i}"' for i in range(many)]
    if draw(st.booleans()):
        names.append(f'odd="{draw(st.text(max_size=10))}"')
    return "{" + ",".join(names) + extra + "}"


@st.composite
def _value(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(st.sampled_from(NUMBERS)) or "1"
    return repr(draw(st.floats(allow_nan=True, allow_infinity=True)))


@st.composite
def metrics_texts(draw: st.DrawFn) -> str:
    """A /metrics answer: vLLM's families (one or two engines), mutated, or garbage."""
    shape = draw(st.sampled_from(["vllm", "vllm", "mutated", "garbage"]))
    if shape == "garbage":
        return draw(st.text(max_size=600))
    out = []
    engines = draw(st.sampled_from([1, 1, 2, 5_000]))  # 5,000: a line for each of many engines
    for name, kind in draw(st.lists(st.sampled_from(_FAMILIES), max_size=6, unique=True)):
        out.append(f"# HELP {name} {name}.\n# TYPE {name} {kind}\n")
        value = draw(_value())
        out += [f'{name}{{engine="{e}"}} {value}\n' for e in range(engines - 1)]
        out.append(f"{name}{draw(_labels())} {draw(_value())}\n")
    if draw(st.booleans()):
        out.append(f"# TYPE {TTFT} histogram\n")
        bounds = draw(st.lists(st.sampled_from([*_BOUNDS, *NUMBERS]), min_size=1, max_size=7))
        for bound in bounds:
            labels = draw(_labels(f',le="{bound}"'))
            out.append(f"{TTFT}_bucket{labels} {draw(_value())}\n")
        out.append(f"{TTFT}_count{draw(_labels())} {draw(_value())}\n")
        out.append(f"{TTFT}_sum{draw(_labels())} {draw(_value())}\n")
    text = "".join(out)
    if shape == "mutated":
        text = mutate(draw, text.encode()).decode("utf-8", "replace")
    return text


def _plausible(value: float | None, what: str) -> None:
    assert value is None or (math.isfinite(value) and abs(value) <= MAX_PLAUSIBLE), (what, value)
    # a figure a panel prints with "{:,.1f}" stays a figure, not a wall of digits
    assert value is None or len(f"{value:,.1f}") <= 30, (what, value)


def check_snapshot(snapshot: MetricsSnapshot) -> None:
    for name in (
        "requests_running",
        "requests_waiting",
        "kv_cache_usage",
        "prompt_tokens",
        "generation_tokens",
        "preemptions",
        "prefix_cache_hits",
        "prefix_cache_queries",
        "prefix_cache_hit_rate",
        "ttft_median_s",
    ):
        _plausible(getattr(snapshot, name), name)
    if snapshot.ttft is not None:
        for bound, count in snapshot.ttft.buckets:
            assert math.isinf(bound) or abs(bound) <= MAX_PLAUSIBLE, bound
            _plausible(count, "bucket")


def check_metrics(text: str) -> None:
    """parse_metrics and rates never raise, answer in time, and give plausible figures."""
    first = timed("parse_metrics", text, partial(parse_metrics, text, taken_at=0.0))
    later = timed("parse_metrics", text, partial(parse_metrics, text, taken_at=1.5))
    timed("rates", text, partial(_check_rates, first, later))


def _check_rates(first: MetricsSnapshot, later: MetricsSnapshot) -> None:
    for snapshot in (first, later):
        check_snapshot(snapshot)
        assert all(isinstance(p, str) for p in snapshot.problems)
    between = rates(first, later)
    for name in ("prompt_tokens_per_s", "generation_tokens_per_s", "preemptions"):
        _plausible(getattr(between, name), name)
    _plausible(between.prefix_cache_hit_rate, "prefix_cache_hit_rate")
    _plausible(between.ttft_median_s, "ttft_median_s")
    rates(later, first)  # a restart: counters went down


CHECKS: dict[str, tuple[Callable[[Any], None], Callable[[], st.SearchStrategy[Any]]]] = {
    "sse": (check_sse, sse_streams),
    "metrics": (check_metrics, metrics_texts),
}

# The same, in the shape bench/fuzz_campaign.py reads from every strategies module:
# parser name -> (its check, its inputs).
PARSERS: dict[str, tuple[Callable[[Any], None], st.SearchStrategy[Any]]] = {
    name: (check, strategy()) for name, (check, strategy) in CHECKS.items()
}
