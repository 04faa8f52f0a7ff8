"""vLLM's /metrics text -> MetricsSnapshot, rates between two snapshots, and fetching."""

from __future__ import annotations

import math

import httpx
import pytest
from tests.fakes.fake_openai import FakeOpenAI

from vllm_console.core.endpoint.metrics import (
    Histogram,
    MetricsSnapshot,
    fetch_metrics,
    parse_metrics,
    rates,
)

BOUNDS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)


def labels(engine: int, extra: str = "") -> str:
    return f'{{engine="{engine}",model_name="Org/Model"{extra}}}'


def family(name: str, kind: str, rows: list[str]) -> str:
    return f"# HELP {name} {name}.\n# TYPE {name} {kind}\n" + "".join(r + "\n" for r in rows)


def vllm_metrics(
    *,
    engines: int = 2,
    scale: float = 1.0,
    ttft: tuple[int, ...] = (0, 1, 3, 6, 8, 10, 10, 10),
    kv_name: str = "vllm:kv_cache_usage_perc",
) -> str:
    """vLLM-shaped text: every engine reports the same numbers times `scale`."""

    def gauge(name: str, value: float, step: float = 0.0) -> str:
        return family(
            name, "gauge", [f"{name}{labels(e)} {value + step * e}" for e in range(engines)]
        )

    out = [gauge("vllm:num_requests_running", 3), gauge("vllm:num_requests_waiting", 1)]
    out.append(gauge(kv_name, 0.2, 0.4))
    counters = {"prompt_tokens": 1000, "generation_tokens": 4000, "num_preemptions": 2}
    counters |= {"prefix_cache_queries": 800, "prefix_cache_hits": 200}
    for name, value in counters.items():
        rows = [f"vllm:{name}_total{labels(e)} {value * scale}" for e in range(engines)]
        rows += [f"vllm:{name}_created{labels(e)} 1.76e9" for e in range(engines)]
        out.append(family(f"vllm:{name}", "counter", rows))
    rows = []
    for e in range(engines):
        for bound, count in (*zip(BOUNDS, ttft, strict=True), ("+Inf", ttft[-1])):
            le = f',le="{bound}"'
            rows.append(f"vllm:time_to_first_token_seconds_bucket{labels(e, le)} {count}.0")
        rows.append(f"vllm:time_to_first_token_seconds_count{labels(e)} {ttft[-1]}.0")
        rows.append(f"vllm:time_to_first_token_seconds_sum{labels(e)} 0.9")
    out.append(family("vllm:time_to_first_token_seconds", "histogram", rows))
    le = ',le="1.0"'
    noise = [f"vllm:request_params_n_bucket{labels(e, le)} 5.0" for e in range(engines)]
    out.append(family("vllm:request_params_n", "histogram", noise))
    gc = 'python_gc_objects_collected_total{generation="0"} 9.0'
    out.append(family("python_gc_objects_collected", "counter", [gc]))
    return "".join(out)


def test_a_snapshot_sums_engines_and_averages_the_kv_cache() -> None:
    snap = parse_metrics(vllm_metrics(), taken_at=10.0)
    assert snap.problems == () and not snap.empty and snap.taken_at == 10.0
    assert (snap.requests_running, snap.requests_waiting) == (6.0, 2.0)
    assert snap.kv_cache_usage == pytest.approx(0.4)  # (0.2 + 0.6) / 2: a fraction, not a sum
    assert (snap.prompt_tokens, snap.generation_tokens, snap.preemptions) == (2000, 8000, 4)
    assert snap.prefix_cache_hit_rate == pytest.approx(0.25)
    assert (
        snap.ttft is not None and snap.ttft.count == 20 and snap.ttft.buckets[-1] == (math.inf, 20)
    )
    # rank 10 of 20 lies in (0.04, 0.08] holding cumulative 6 -> 12: 0.04 + 0.04 * 4/6
    assert snap.ttft_median_s == pytest.approx(0.04 + 0.04 * 4 / 6)


def test_the_older_kv_cache_name_and_a_single_engine() -> None:
    snap = parse_metrics(vllm_metrics(engines=1, kv_name="vllm:gpu_cache_usage_perc"))
    assert snap.kv_cache_usage == pytest.approx(0.2) and snap.requests_running == 3.0


def test_rates_between_two_snapshots() -> None:
    earlier = parse_metrics(vllm_metrics(), taken_at=100.0)
    later_ttft = (0, 1, 3, 6, 8, 10, 20, 30)  # 20 new first tokens, all in (0.32, 1.28]
    later = parse_metrics(vllm_metrics(scale=1.5, ttft=later_ttft), taken_at=102.0)
    r = rates(earlier, later)
    assert r.interval_s == 2.0
    assert r.prompt_tokens_per_s == pytest.approx(500.0)  # 2000 * 0.5 / 2 s
    assert r.generation_tokens_per_s == pytest.approx(2000.0)
    assert r.preemptions == pytest.approx(2.0) and r.prefix_cache_hit_rate == pytest.approx(0.25)
    assert r.requests == 40 and r.ttft_median_s == pytest.approx(0.64)
    assert rates(later, later).interval_s == 0 and rates(later, later).ttft_median_s is None


def test_a_counter_that_went_down_means_a_restart_not_a_negative_rate() -> None:
    earlier = parse_metrics(vllm_metrics(scale=2.0), taken_at=0.0)
    later = parse_metrics(vllm_metrics(ttft=(0,) * 8), taken_at=1.0)
    r = rates(earlier, later)
    assert r.generation_tokens_per_s is None and r.preemptions is None
    assert r.ttft_median_s is None and r.requests is None


def test_histogram_quantiles() -> None:
    inf = math.inf
    assert Histogram(((1.0, 0.0), (inf, 0.0)), 0, 0).quantile(0.5) is None
    assert Histogram(((1.0, 0.0), (2.0, 4.0), (inf, 4.0)), 4, 6).quantile(0.5) == 1.5
    assert Histogram(((1.0, 1.0), (2.0, 1.0), (inf, 9.0)), 9, 90).quantile(0.5) == 2.0
    assert Histogram(((1.0, 2.0), (inf, 2.0)), 2, 1).quantile(0.5) == 0.5
    other = Histogram(((5.0, 1.0), (inf, 1.0)), 1, 1)
    assert Histogram(((1.0, 2.0), (inf, 2.0)), 2, 1).since(other) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "/metrics: an empty answer"),
        ("<html><body>Not Found</body></html>", "/metrics: no vLLM metrics"),
        ("hello world\n\x00\x01 garbage", "/metrics: no vLLM metrics"),
        ('vllm:num_requests_running{engine="0" 1\n', "/metrics: unreadable"),
        ("vllm:num_requests_running twelve\n", "/metrics: unreadable"),
    ],
)
def test_garbage_is_an_empty_snapshot_with_a_problem(text: str, problem: str) -> None:
    snap = parse_metrics(text)
    assert snap.empty and len(snap.problems) == 1 and snap.problems[0].startswith(problem)
    assert snap.ttft_median_s is None and snap.prefix_cache_hit_rate is None


async def test_fetch_is_calm_about_servers_without_metrics() -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        with FakeOpenAI() as fake:  # an OpenAI-compatible server without /metrics
            snap = await fetch_metrics(client, fake.base_url)
            assert snap.empty and snap.problems == (
                f"http://127.0.0.1:{fake.port}/metrics answered HTTP 404",
            )
        snap = await fetch_metrics(client, "http://127.0.0.1:9/v1")
    assert isinstance(snap, MetricsSnapshot) and snap.empty
    assert snap.problems == ("http://127.0.0.1:9/metrics: cannot connect (connection refused)",)


def test_implausible_figures_are_left_out_and_named() -> None:
    text = vllm_metrics() + 'vllm:num_requests_running{engine="9"} 1e300\n'
    snap = parse_metrics(text + 'vllm:generation_tokens_total{engine="9"} NaN\n')
    assert snap.requests_running is None and snap.generation_tokens is None
    assert snap.requests_waiting == 2  # the rest is still read
    assert any("implausible value for vllm:num_requests_running" in p for p in snap.problems)
    huge = parse_metrics("vllm:num_requests_running " + "9" * 400 + "\n")
    assert huge.empty and huge.problems[0].startswith("/metrics: unreadable")
    bounds = parse_metrics('vllm:time_to_first_token_seconds_bucket{le="1e300"} 5\n')
    assert bounds.ttft is None and "implausible buckets" in bounds.problems[0]


def test_more_hits_than_queries_is_no_hit_rate() -> None:
    snap = parse_metrics("vllm:prefix_cache_hits_total 5\nvllm:prefix_cache_queries_total 1e-300\n")
    assert snap.prefix_cache_hit_rate is None


def test_huge_lines_are_skipped_not_parsed() -> None:
    labels = ",".join(f'l{i}="v"' for i in range(10_000))
    text = vllm_metrics() + f"vllm:num_requests_running{{{labels}}} 1\n"
    snap = parse_metrics(text)
    assert snap.requests_running == 6  # the two engines' lines; the huge one is skipped
    assert snap.problems == ("/metrics: 1 lines over 4096 characters skipped",)
    many = "".join(f'vllm:num_requests_running{{engine="{e}"}} 1\n' for e in range(20_000))
    snap = parse_metrics(many)
    assert snap.requests_running is not None and snap.requests_running < 20_000
    assert snap.problems and "KB skipped" in snap.problems[0]
