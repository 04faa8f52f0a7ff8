"""vLLM's Prometheus `/metrics`, read into a small typed snapshot, and rates between two.

`parse_metrics` keeps only the families the console shows and reads them with
`prometheus_client`'s text parser, summing over label sets (one per engine and served model
name). A snapshot holds gauges and raw counters; `rates(earlier, later)` turns two of them into
tokens per second, preemptions, the prefix cache hit rate and the median time to first token
over the interval between them (the histogram's buckets, differenced, interpolated as
Prometheus' `histogram_quantile` does). Text that is not vLLM's metrics gives an empty
snapshot whose `problems` say why, never an exception; `fetch_metrics` does the same for a
server that cannot be reached, or that answers too much or too slowly (its read is capped
in size and time before anything is parsed). A figure no server could report (NaN, an
infinity, a negative count, one past MAX_PLAUSIBLE, a bucket bound that is none of these) is
left out and named in `problems`: it would otherwise be shown as a wall of digits, or poison
every rate.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import httpx

from vllm_console.core.endpoint.capped import fetch
from vllm_console.core.endpoint.client import server_root
from vllm_console.core.endpoint.sse import MAX_PLAUSIBLE

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")  # newer, older name
PROMPT = "vllm:prompt_tokens_total"
GENERATION = "vllm:generation_tokens_total"
PREEMPTIONS = "vllm:num_preemptions_total"
PREFIX_HITS = "vllm:prefix_cache_hits_total"
PREFIX_QUERIES = "vllm:prefix_cache_queries_total"
TTFT = "vllm:time_to_first_token_seconds"
_WANTED: tuple[str, ...] = (RUNNING, WAITING, *KV_USAGE, PROMPT, GENERATION, PREEMPTIONS)
_WANTED += (PREFIX_HITS, PREFIX_QUERIES, TTFT + "_bucket", TTFT + "_count", TTFT + "_sum")
_PREFIXES = tuple(name + suffix for name in _WANTED for suffix in ("{", " "))
# vLLM's lines are ~150 characters and the kept ones a few KB (a few hundred with many
# engines). The parser reads ~1 MB/s: a line of 10,000 labels costs 0.2 s, and every second
# spent here is a second the screen does not move. Past these limits lines are skipped.
MAX_LINE_CHARS = 4096
MAX_KEPT_CHARS = 256 * 1024


@dataclass(frozen=True)
class Histogram:
    """Cumulative buckets `(upper bound, count)`, ascending, the last one +Inf."""

    buckets: tuple[tuple[float, float], ...]
    count: float
    total: float

    def quantile(self, q: float) -> float | None:
        """The q-quantile, linear within a bucket; None without observations."""
        if not self.buckets or self.buckets[-1][1] <= 0:
            return None
        rank = q * self.buckets[-1][1]
        low, below = 0.0, 0.0
        for bound, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(bound):
                    return low  # above the highest finite bound: that bound is all we know
                if cumulative == below:
                    return bound
                return low + (bound - low) * (rank - below) / (cumulative - below)
            low, below = bound, cumulative
        return low

    def since(self, earlier: Histogram) -> Histogram | None:
        """The observations made after `earlier`; None if the buckets differ or it reset."""
        if [b for b, _ in earlier.buckets] != [b for b, _ in self.buckets]:
            return None
        if self.count < earlier.count:
            return None
        pairs = zip(self.buckets, earlier.buckets, strict=True)
        buckets = tuple((b, now - then) for (b, now), (_, then) in pairs)
        return Histogram(buckets, self.count - earlier.count, self.total - earlier.total)


@dataclass(frozen=True)
class MetricsSnapshot:
    """One reading of /metrics. Counters are totals since the server started."""

    taken_at: float  # time.monotonic() of the reading
    requests_running: float | None = None
    requests_waiting: float | None = None
    kv_cache_usage: float | None = None  # 0..1, the mean over engines
    prompt_tokens: float | None = None
    generation_tokens: float | None = None
    preemptions: float | None = None
    prefix_cache_hits: float | None = None
    prefix_cache_queries: float | None = None
    ttft: Histogram | None = None
    problems: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return all(
            value is None
            for value in (self.requests_running, self.kv_cache_usage, self.generation_tokens)
        )

    @property
    def prefix_cache_hit_rate(self) -> float | None:
        """Since the server started; `rates` gives it over an interval."""
        return _ratio(self.prefix_cache_hits, self.prefix_cache_queries)

    @property
    def ttft_median_s(self) -> float | None:
        return self.ttft.quantile(0.5) if self.ttft else None


@dataclass(frozen=True)
class MetricsRates:
    """What happened between two snapshots. None: unknown (no data, or a server restart)."""

    interval_s: float
    prompt_tokens_per_s: float | None = None
    generation_tokens_per_s: float | None = None
    preemptions: float | None = None
    prefix_cache_hit_rate: float | None = None
    ttft_median_s: float | None = None
    requests: float | None = None  # first tokens sent in the interval


def _ratio(part: float | None, whole: float | None) -> float | None:
    """A hit rate: None unless both are known and it lies in 0..1 (more hits than queries, or
    a tiny denominator, says the figures are not what they claim)."""
    if part is None or not whole:
        return None
    ratio = part / whole
    return ratio if 0.0 <= ratio <= 1.0 else None


def _plausible(value: float) -> bool:
    return math.isfinite(value) and 0.0 <= value <= MAX_PLAUSIBLE


def _keep(text: str) -> tuple[str, list[str]]:
    """The lines of the families shown, within the limits above; and what was skipped."""
    # The parser takes ~60 ms for 160 KB of metrics; the dozen lines shown take ~3 ms.
    kept: list[str] = []
    size, long_lines, over = 0, 0, 0
    for line in text.splitlines():
        if not line.startswith(_PREFIXES):
            continue
        if len(line) > MAX_LINE_CHARS:
            long_lines += 1
        elif size + len(line) > MAX_KEPT_CHARS:
            over += 1
        else:
            kept.append(line)
            size += len(line) + 1
    problems = []
    if long_lines:
        problems.append(f"/metrics: {long_lines} lines over {MAX_LINE_CHARS} characters skipped")
    if over:
        problems.append(f"/metrics: {over} lines past the first {MAX_KEPT_CHARS >> 10} KB skipped")
    return "\n".join(kept), problems


def parse_metrics(text: str, *, taken_at: float | None = None) -> MetricsSnapshot:
    """Read the families above; anything unreadable is a problem in the snapshot."""
    from prometheus_client.parser import text_string_to_metric_families

    taken_at = time.monotonic() if taken_at is None else taken_at
    kept, problems = _keep(text)
    if not kept:
        found = "an empty answer" if not text.strip() else "no vLLM metrics"
        return MetricsSnapshot(taken_at, problems=(f"/metrics: {found}", *problems))
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    buckets: dict[float, float] = {}
    try:
        for family in text_string_to_metric_families(kept):
            for sample in family.samples:
                if sample.name == TTFT + "_bucket":
                    bound = float(sample.labels.get("le", "nan"))
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
                else:
                    sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
                    counts[sample.name] = counts.get(sample.name, 0) + 1
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        # OverflowError: an integer of hundreds of digits, which the parser turns into a float
        return MetricsSnapshot(taken_at, problems=(f"/metrics: unreadable ({exc})"[:300],))
    for name, value in list(sums.items()):
        if not _plausible(value):
            del sums[name]
            problems.append(f"/metrics: implausible value for {name}: {value:.3g}")
    kv = next((k for k in KV_USAGE if k in sums), None)
    ttft = None
    if buckets:
        plausible = all(
            (b == math.inf or _plausible(b)) and _plausible(n) for b, n in buckets.items()
        )
        if plausible:
            ordered = tuple(sorted(buckets.items()))
            count, total = sums.get(TTFT + "_count", 0.0), sums.get(TTFT + "_sum", 0.0)
            ttft = Histogram(ordered, count, total)
        else:
            problems.append(f"/metrics: implausible buckets for {TTFT}")
    return MetricsSnapshot(
        taken_at,
        requests_running=sums.get(RUNNING),
        requests_waiting=sums.get(WAITING),
        kv_cache_usage=sums[kv] / counts[kv] if kv else None,
        prompt_tokens=sums.get(PROMPT),
        generation_tokens=sums.get(GENERATION),
        preemptions=sums.get(PREEMPTIONS),
        prefix_cache_hits=sums.get(PREFIX_HITS),
        prefix_cache_queries=sums.get(PREFIX_QUERIES),
        ttft=ttft,
        problems=tuple(problems),
    )


def _delta(earlier: float | None, later: float | None) -> float | None:
    if earlier is None or later is None or later < earlier:
        return None  # a counter that went down: the server restarted in between
    return later - earlier


def rates(earlier: MetricsSnapshot, later: MetricsSnapshot) -> MetricsRates:
    """Counter deltas per second, and the interval's TTFT median and prefix cache hit rate."""
    interval = later.taken_at - earlier.taken_at
    if interval <= 0:
        return MetricsRates(interval)

    def per_s(value: float | None) -> float | None:
        return None if value is None else value / interval

    hits = _delta(earlier.prefix_cache_hits, later.prefix_cache_hits)
    queries = _delta(earlier.prefix_cache_queries, later.prefix_cache_queries)
    recent = later.ttft.since(earlier.ttft) if later.ttft and earlier.ttft else None
    return MetricsRates(
        interval,
        prompt_tokens_per_s=per_s(_delta(earlier.prompt_tokens, later.prompt_tokens)),
        generation_tokens_per_s=per_s(_delta(earlier.generation_tokens, later.generation_tokens)),
        preemptions=_delta(earlier.preemptions, later.preemptions),
        prefix_cache_hit_rate=_ratio(hits, queries),
        ttft_median_s=recent.quantile(0.5) if recent else None,
        requests=recent.count if recent else None,
    )


async def fetch_metrics(
    client: httpx.AsyncClient, base_url: str, api_key: str | None = None, timeout: float = 5.0
) -> MetricsSnapshot:
    """GET the server root's /metrics and parse it; trouble is a problem, not an exception.
    The answer is read up to MAX_BODY_BYTES within `timeout` (`capped.fetch`) before parsing."""
    url = f"{server_root(base_url)}/metrics"
    answer = await fetch(client, url, api_key=api_key, timeout=timeout)
    if answer.error is not None:
        return MetricsSnapshot(time.monotonic(), problems=(f"{url}: {answer.error}",))
    if answer.status != 200:
        problem = f"{url} answered HTTP {answer.status}"
        return MetricsSnapshot(time.monotonic(), problems=(problem,))
    return parse_metrics(answer.text())
