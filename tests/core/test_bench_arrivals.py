"""Paced arrivals (`--request-rate`, `--burstiness`): vLLM's schedule, kept by the console's
client against the stand-in server, passed on to `vllm bench serve`, named when bad."""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fakes.bench_server import BenchServer

from vllm_console.core.bench import stream
from vllm_console.core.bench.archive import all_benches
from vllm_console.core.bench.arrivals import (
    INF,
    arrival_times,
    describe_rate,
    rate_from_json,
    rate_json,
)
from vllm_console.core.bench.load import Target, client_for, run_step
from vllm_console.core.bench.prompts import Prompt
from vllm_console.core.bench.vllm_bench import Load, bench_argv
from vllm_console.widgets.bench.plots import choice_label

ROOT = Path(__file__).resolve().parents[2]
RATES = st.floats(0.001, 1e6) | st.just(INF)
SHAPES = st.floats(0.01, 1000.0) | st.just(INF)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[BenchServer]:
    server = BenchServer(tmp_path, token_s=0.001)
    yield server
    server.kill()


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 300), RATES, SHAPES, st.integers(0, 2**32))
def test_the_schedule_is_ordered_and_ends_at_n_over_r(
    count: int, rate: float, shape: float, seed: int
) -> None:
    times = arrival_times(count, rate, shape, seed)
    assert len(times) == count and times == sorted(times)
    assert all(0.0 <= t < math.inf for t in times)
    assert times == arrival_times(count, rate, shape, seed)  # the seed decides
    if count and math.isinf(rate):
        assert set(times) == {0.0}
    elif count:
        assert times[-1] == pytest.approx(count / rate)
    if count and not math.isinf(rate) and math.isinf(shape):
        assert times == [(i + 1) / rate for i in range(count)]


def test_gaps_have_vllms_distribution() -> None:
    """Gamma gaps of shape B and mean 1/R: their spread (coefficient of variation) is
    1/sqrt(B): 1 for Poisson arrivals, 0.5 for B = 4, none when evenly spaced."""
    for shape, spread in ((1.0, 1.0), (4.0, 0.5), (INF, 0.0)):
        times = arrival_times(4000, 8.0, shape, seed=3)
        gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
        assert statistics.fmean(gaps) == pytest.approx(1 / 8, rel=1e-6)
        assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(spread, abs=0.05)
    assert arrival_times(20, 8.0, seed=1) != arrival_times(20, 8.0, seed=2)
    assert describe_rate(INF) == "all at once"
    assert describe_rate(4.0, INF) == "4 req/s (evenly)"
    assert describe_rate(0.5) == "0.5 req/s (Poisson)"
    assert describe_rate(2.0, 3.0) == "2 req/s (burstiness 3)"
    assert rate_json(INF) == "inf" and rate_from_json("inf", 1.0) == INF
    assert rate_from_json(rate_json(2.5), INF) == 2.5
    for odd in (None, True, -1, 0, math.nan, 1e300, "fast", [4]):
        assert rate_from_json(odd, 7.0) == 7.0


def test_vllm_bench_is_asked_for_the_same_schedule(tmp_path: Path) -> None:
    base = Load("http://h:1/v1", "m", "m", 8, 32, 16)
    argv = bench_argv(["vllm", "bench", "serve"], base, 2, tmp_path / "o.json")
    assert argv[argv.index("--request-rate") + 1] == "inf"
    assert argv[argv.index("--burstiness") + 1] == "1.0"
    paced = Load("http://h:1/v1", "m", "m", 8, 32, 16, request_rate=2.5, burstiness=INF)
    argv = bench_argv(["vllm", "bench", "serve"], paced, 2, tmp_path / "o.json")
    assert float(argv[argv.index("--request-rate") + 1]) == 2.5
    assert argv[argv.index("--burstiness") + 1] == "inf"


def _recording(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    """(sent, answered) of each request the load runner makes, on the perf_counter clock."""
    spans: list[tuple[float, float]] = []
    real = stream.wire_once

    async def wire_once(*args: Any) -> Any:
        sent = time.perf_counter()
        result = await real(*args)
        spans.append((sent, time.perf_counter()))
        return result

    monkeypatch.setattr("vllm_console.core.bench.load.wire_once", wire_once)
    return spans


async def _step(fake: BenchServer, count: int, concurrency: int, times: list[float]) -> float:
    await fake.ready()
    prompts: list[Prompt] = [f"hello {i}" for i in range(count)]
    async with client_for(concurrency, fake.url) as pool:
        start = time.perf_counter()
        step = await run_step(pool, Target(fake.url, "tiny"), prompts, 4, concurrency, None, times)
    assert (step.completed, step.failed) == (count, 0)
    return start


async def test_no_request_goes_out_before_its_time(
    fake: BenchServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans = _recording(monkeypatch)
    times = arrival_times(12, 40.0, 1.0, seed=5)  # Poisson: some gaps short, some long
    start = await _step(fake, 12, 12, times)
    sent = sorted(s for s, _ in spans)
    assert len(sent) == 12
    for due, went in zip(times, sent, strict=True):
        assert went >= start + due - 0.002  # never early (the clock's grain aside)
        assert went <= start + due + 0.25  # and not held back: 12 slots, all free


async def test_a_request_that_is_due_waits_for_a_free_slot(
    fake: BenchServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans = _recording(monkeypatch)
    await _step(fake, 8, 2, arrival_times(8, 1000.0, INF))  # due faster than answered
    for moment, _ in spans:
        in_flight = sum(s <= moment < e for s, e in spans)
        assert in_flight <= 2


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "vllm_console", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)


def test_the_command_paces_names_bad_values_and_keeps_the_rate(
    fake: BenchServer, tmp_path: Path
) -> None:
    asyncio.run(fake.ready())
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tui"), str(ROOT)])
    for flag, bad in (("--request-rate", "0"), ("--request-rate", "fast"),
                      ("--request-rate", "nan"), ("--burstiness", "-1"),
                      ("--burstiness", "1e9")):  # fmt: skip
        done = _cli("bench", "--base-url", fake.url, flag, bad, env=env)
        assert done.returncode == 2, (flag, bad, done.stderr)
        assert f"{flag}: '{bad}'" in done.stderr
    began = time.monotonic()
    done = _cli("bench", "--base-url", fake.url, "--concurrency", "4", "--num-prompts", "6",
                "--input-len", "8", "--output-len", "4", "--client", "console",
                "--request-rate", "10", "--burstiness", "inf", "--json", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - began >= 0.6  # the sixth request was due at 6/10 s
    assert "arriving 10 req/s (evenly)" in done.stderr
    record = json.loads(done.stdout)
    assert record["config"]["request_rate"] == 10.0
    assert record["config"]["burstiness"] == "inf"
    assert record["steps"][0]["completed"] == 6
    listed = _cli("runs", env=env)
    assert "concurrency 4 at 10 req/s (evenly)" in listed.stdout, listed.stdout
    [saved] = all_benches(tmp_path / "state" / "vllm-console" / "runs")
    assert choice_label(saved).endswith("c=4 at 10 req/s (evenly) (console)")  # to compare with
