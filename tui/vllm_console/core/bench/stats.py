"""The figures of one benchmark step, defined as vLLM's `benchmarks/serve.py` defines them.

Per request (`RequestResult`): TTFT is the time from sending to the first chunk that carries a
choice; ITL the gaps between such chunks; E2EL (`latency`) the time to the last of them; the
output length is the server's `usage.completion_tokens` (1 when it sent none). A request
succeeds when it got a first chunk and its stream ended properly. Per step (`StepResult`):
TPOT of a request is (E2EL - TTFT) / (output tokens - 1), over requests of more than one
token; throughputs divide by the step's wall time; percentiles interpolate linearly between
the two nearest values (numpy's default), and an empty list gives 0, as vLLM's do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

CONSOLE = "console"  # the console's own client ran the load
VLLM = "vllm"  # the user's `vllm bench serve` did


@dataclass(frozen=True)
class RequestResult:
    ok: bool
    ttft_s: float = 0.0
    latency_s: float = 0.0
    itl_s: tuple[float, ...] = ()
    output_tokens: int = 0
    prompt_tokens: int = 0
    error: str = ""


def percentile(values: Sequence[float], p: float) -> float:
    """numpy.percentile(values or 0, p) with linear interpolation."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Counters:
    """The server's own counts over a step (differences of `/metrics` counters), and its own
    mean latencies over the step (differences of its histograms' sums and counts): how fast
    the server says it was, whatever the client's clock says."""

    requests: float | None = None
    generation_tokens: float | None = None
    prompt_tokens: float | None = None
    ttft_mean_ms: float | None = None
    itl_mean_ms: float | None = None
    e2el_mean_ms: float | None = None
    prefill_mean_ms: float | None = None  # the engine's own, from scheduled to first token


@dataclass(frozen=True)
class StepResult:
    """One concurrency level. Times in milliseconds, throughputs per second."""

    concurrency: int
    source: str
    num_prompts: int
    completed: int
    failed: int
    duration_s: float
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    tpot_p50_ms: float
    itl_p50_ms: float
    itl_p99_ms: float
    e2el_p50_ms: float
    mean_ttft_ms: float = 0.0
    mean_tpot_ms: float = 0.0
    mean_itl_ms: float = 0.0
    mean_e2el_ms: float = 0.0
    errors: tuple[str, ...] = ()  # a few of the failures' reasons, for the record
    server: Counters | None = None
    mismatch: str | None = None  # the client's counts and the server's disagree: how
    cancelled: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["errors"] = list(self.errors)
        return data

    def with_counters(self, server: Counters | None) -> StepResult:
        return replace(self, server=server, mismatch=mismatch(self, server))


# The figures two runs of the same load share, for comparisons (and the agreement test).
SHARED = (
    "completed",
    "failed",
    "total_input_tokens",
    "total_output_tokens",
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    "ttft_p50_ms",
    "tpot_p50_ms",
    "itl_p50_ms",
    "e2el_p50_ms",
)
MAX_ERRORS_KEPT = 5


def _ms(values: Sequence[float], p: float) -> float:
    return percentile(values, p) * 1000


def _mean_ms(values: Sequence[float]) -> float:
    return sum(values) / len(values) * 1000 if values else 0.0


def summarize(
    results: Sequence[RequestResult],
    *,
    concurrency: int,
    duration_s: float,
    num_prompts: int | None = None,
    source: str = CONSOLE,
    cancelled: bool = False,
) -> StepResult:
    done = [r for r in results if r.ok]
    outputs = [r.output_tokens or 1 for r in done]
    ttfts = [r.ttft_s for r in done]
    e2els = [r.latency_s for r in done]
    itls = [gap for r in done for gap in r.itl_s]
    tpots = [
        (r.latency_s - r.ttft_s) / (n - 1) for r, n in zip(done, outputs, strict=True) if n > 1
    ]
    total_in = sum(r.prompt_tokens for r in done)
    total_out = sum(outputs)
    dur = duration_s if duration_s > 0 else math.inf
    errors = list(dict.fromkeys(r.error for r in results if not r.ok and r.error))
    return StepResult(
        concurrency=concurrency,
        source=source,
        num_prompts=len(results) if num_prompts is None else num_prompts,
        completed=len(done),
        failed=len(results) - len(done),
        duration_s=duration_s,
        total_input_tokens=total_in,
        total_output_tokens=total_out,
        request_throughput=len(done) / dur,
        output_throughput=total_out / dur,
        total_token_throughput=(total_in + total_out) / dur,
        ttft_p50_ms=_ms(ttfts, 50),
        ttft_p99_ms=_ms(ttfts, 99),
        tpot_p50_ms=_ms(tpots, 50),
        itl_p50_ms=_ms(itls, 50),
        itl_p99_ms=_ms(itls, 99),
        e2el_p50_ms=_ms(e2els, 50),
        mean_ttft_ms=_mean_ms(ttfts),
        mean_tpot_ms=_mean_ms(tpots),
        mean_itl_ms=_mean_ms(itls),
        mean_e2el_ms=_mean_ms(e2els),
        errors=tuple(errors[:MAX_ERRORS_KEPT]),
        cancelled=cancelled,
    )


def mismatch(step: StepResult, server: Counters | None) -> str | None:
    """How the server's counts differ from the client's, in words; None when they agree (or
    the server gave none). Other clients' traffic in the same window shows up here too."""
    if server is None:
        return None
    said: list[str] = []
    if server.requests is not None and round(server.requests) != step.completed:
        said.append(f"server finished {server.requests:.0f} requests, client {step.completed}")
    gen = server.generation_tokens
    if gen is not None and round(gen) != step.total_output_tokens:
        said.append(f"server generated {gen:.0f} tokens, client counted {step.total_output_tokens}")
    return "; ".join(said) or None


def step_from_json(data: Mapping[str, Any]) -> StepResult:
    """A step from its record; ValueError or TypeError when it is damaged."""
    names = {f.name: f for f in StepResult.__dataclass_fields__.values()}
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name not in names:
            continue
        kwargs[name] = value
    for name in ("concurrency", "num_prompts", "completed", "failed"):
        kwargs[name] = _count(kwargs.get(name))
    for name in ("total_input_tokens", "total_output_tokens"):
        kwargs[name] = _count(kwargs.get(name))
    for name, spec in names.items():
        if spec.type == "float" and name in kwargs:
            kwargs[name] = _number(kwargs[name])
    kwargs["source"] = _text(kwargs.get("source", CONSOLE))
    kwargs["errors"] = tuple(_text(e) for e in _list(kwargs.get("errors", []))[:MAX_ERRORS_KEPT])
    kwargs["mismatch"] = None if kwargs.get("mismatch") is None else _text(kwargs["mismatch"])
    kwargs["cancelled"] = kwargs.get("cancelled") is True
    server = kwargs.get("server")
    if server is not None:
        if not isinstance(server, dict):
            raise TypeError("server counters: an object expected")
        kwargs["server"] = Counters(*(_optional_number(server.get(k)) for k in COUNTER_KEYS))
    return StepResult(**kwargs)


COUNTER_KEYS = (
    "requests", "generation_tokens", "prompt_tokens", "ttft_mean_ms", "itl_mean_ms", "e2el_mean_ms",
    "prefill_mean_ms",
)  # fmt: skip
LIMIT = 1e15  # no count or rate a real run reports comes near this


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("a number expected")
    if not 0 <= value <= LIMIT:  # NaN fails this too
        raise ValueError("an implausible number")
    return float(value)


def _optional_number(value: object) -> float | None:
    return None if value is None else _number(value)


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LIMIT:
        raise ValueError("a count expected")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("text expected")
    return value


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError("a list expected")
    return value
