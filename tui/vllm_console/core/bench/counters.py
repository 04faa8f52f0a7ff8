"""The server's own counts around a benchmark step, from vLLM's `/metrics`.

`parse_counters` keeps the few families a step is checked against (finished requests,
prompt and generation tokens, running requests, and the sums and counts of the TTFT,
inter-token, end-to-end latency and prefill time histograms, not their buckets), sums them
over label sets (engines, finish reasons) with `prometheus_client`'s parser, and gives None
for a family that is absent or holds a figure no server could report. Untrusted text never
raises.
`read_counters` fetches through the capped reader; `settle` waits (briefly) until the server
has no request running, so that a step's last requests are in the counters before they are
read. `between` gives a step's counts and the server's own mean latencies over the step.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from vllm_console.core.bench.stats import Counters
from vllm_console.core.endpoint.capped import fetch
from vllm_console.core.endpoint.client import server_root

REQUESTS = "vllm:request_success_total"
PROMPT = "vllm:prompt_tokens_total"
GENERATION = "vllm:generation_tokens_total"
RUNNING = "vllm:num_requests_running"
TTFT = "vllm:time_to_first_token_seconds"
ITL = "vllm:inter_token_latency_seconds"
E2EL = "vllm:e2e_request_latency_seconds"
PREFILL = "vllm:request_prefill_time_seconds"  # the engine's own: scheduled to first token
_LATENCIES = (TTFT, ITL, E2EL, PREFILL)
_PARTS = tuple(name + part for name in _LATENCIES for part in ("_sum", "_count"))
_NAMES = (REQUESTS, PROMPT, GENERATION, RUNNING, *_PARTS)
_PREFIXES = tuple(name + end for name in _NAMES for end in ("{", " "))
MAX_LINE_CHARS = 4096
MAX_LINES = 4096
LIMIT = 1e15


SumCount = tuple[float | None, float | None]


@dataclass(frozen=True)
class Reading:
    requests: float | None = None
    prompt_tokens: float | None = None
    generation_tokens: float | None = None
    running: float | None = None
    # (sum in seconds, count) of each latency histogram: TTFT, inter-token, end to end, prefill
    latencies: tuple[SumCount, ...] = ((None, None),) * len(_LATENCIES)


def parse_counters(text: str) -> Reading:
    kept = [
        line
        for line in text.splitlines()
        if line.startswith(_PREFIXES) and len(line) <= MAX_LINE_CHARS
    ][:MAX_LINES]
    sums: dict[str, float] = {}
    bad: set[str] = set()
    try:
        for family in text_string_to_metric_families("\n".join(kept) + "\n"):
            for sample in family.samples:
                value = sample.value
                if not (isinstance(value, int | float) and 0 <= value <= LIMIT):
                    bad.add(sample.name)  # NaN and infinities fail this too
                else:
                    sums[sample.name] = sums.get(sample.name, 0.0) + float(value)
    except (ValueError, TypeError, IndexError, KeyError):  # the parser's complaints
        return Reading()

    def get(name: str) -> float | None:
        value = sums.get(name)
        return None if name in bad or value is None or not math.isfinite(value) else value

    latencies = tuple((get(name + "_sum"), get(name + "_count")) for name in _LATENCIES)
    return Reading(get(REQUESTS), get(PROMPT), get(GENERATION), get(RUNNING), latencies)


async def read_counters(
    client: httpx.AsyncClient, base_url: str, api_key: str | None = None
) -> Reading | None:
    """The server's counters now; None when it gives no metrics."""
    answer = await fetch(client, f"{server_root(base_url)}/metrics", api_key=api_key)
    if answer.status != 200 or answer.error is not None:
        return None
    return parse_counters(answer.text())


async def settle(
    client: httpx.AsyncClient, base_url: str, api_key: str | None, limit_s: float = 3.0
) -> Reading | None:
    """A reading once no request runs on the server (or after `limit_s`)."""
    deadline = time.monotonic() + limit_s
    reading = await read_counters(client, base_url, api_key)
    while reading is not None and (reading.running or 0) > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        reading = await read_counters(client, base_url, api_key)
    return reading


def between(before: Reading | None, after: Reading | None) -> Counters | None:
    """What the server counted between two readings; None without both (or across a
    restart, where a counter went down)."""
    if before is None or after is None:
        return None

    def delta(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or b < a else b - a

    def mean_ms(was: SumCount, now: SumCount) -> float | None:
        total, count = delta(was[0], now[0]), delta(was[1], now[1])
        return None if total is None or not count else round(total / count * 1000, 3)

    ttft, itl, e2el, prefill = (
        mean_ms(a, b) for a, b in zip(before.latencies, after.latencies, strict=True)
    )
    counts = Counters(
        delta(before.requests, after.requests),
        delta(before.generation_tokens, after.generation_tokens),
        delta(before.prompt_tokens, after.prompt_tokens),
        ttft,
        itl,
        e2el,
        prefill,
    )
    return None if counts == Counters() else counts
