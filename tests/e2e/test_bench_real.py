"""Benchmarks against a real vLLM (CPU build) on the tiny model: concurrency 1 and 2, 8 prompts
of 32 input and 16 output tokens, each step checked against the server's own counters.

Headless, the console's client and vLLM's own `vllm bench serve` run the same load and must
agree within 10% on every figure they share: with the requests paced, every one, TTFT
included; with every request sent at once, all but TTFT, which the engine's speed under each
client's pace moves further on this machine (within 30% there: see below). They disagreed at
first (TTFT p50 at concurrency 1: 42 ms ours, 82 ms theirs; 7.31 vs 6.68 req/s; 256 vs 258
input tokens). Two causes, both found by reading vLLM's `benchmarks/serve.py`, its random
dataset and its request function, and by running each client several times on one server:

- what was sent: ours sent 32 token ids; vLLM's random dataset sends *text*, 31 random
  tokens decoded and encoded again until they are 31 (or not, after ten tries: hence its 258),
  to which the server adds its BOS. Its body also carries `logprobs: null` and each request
  an `x-request-id`. The console now makes its prompts the same way through the server's
  `/tokenize` and `/detokenize`, and sends the same body and headers. (Stream options,
  `ignore_eos`, the timing points and the schedule were the same already; `vllm bench
  serve` sends no warm-up request unless asked.)
- where it ran: on a 2-core machine the CPU build's engine and the client share cores, and a
  generating engine keeps the client from reading for tens of milliseconds, so tokens arrive
  in bursts and a run's TTFT moves between ~20 and ~80 ms *for the same client* from one run
  to the next. Here the server runs on the first core and both clients on the others
  (`own_cores`), and the clients take turns, seven times each, who goes first alternating.
- how much was measured: with 8 prompts a step lasts a second, and the same client's figures
  still moved by 40-60% from run to run (one request held up for 100 ms is 10% of a
  throughput), so the comparison runs 32 prompts per step, seven rounds.
- how fast the server was: even then the *server* drifts. Its own per-token time moved in
  steps (5.3, 3.8, 2.7 ms) between runs taken back to back, and vLLM's client, which spends
  about three times the CPU per request that ours does, slows the engine it shares the
  machine with. Raw figures of two runs then differ by 30-50% whichever client is right. So
  each figure is put over what the server itself measured in that step, from its `/metrics`
  histograms: its TPOT and ITL over the server's mean inter-token latency, its end-to-end
  latency over the server's mean, its throughputs times the server's mean request latency.
  What is left is the client's own share, and console / vLLM of that, the median over the
  rounds, must be strictly within 10% (measured: 0.91-1.03).
- TTFT, compared as measured, first with every request sent at once (closed loop): the
  server's own TTFT and its engine's prefill time moved with the client's pace (prefill
  15-30% longer under ours, even at concurrency 1 with each request alone in the engine:
  ours sends the next request sooner after an answer ends, while the frontend, on the
  engine's core, still finishes the last one). Over seven rounds of 1536-token prompts the
  raw medians came 0.92-1.16: that measured the load each client makes, not its clock.
  There the TTFT is judged within 30% (`LOOSE_TOLERANCE`: a client that measured it
  differently, as the first versions did at 2x, still fails).
- so the same rounds are run again with the requests paced (`--request-rate 4 --burstiness
  inf`: evenly spaced, each answered before the next is due, so the concurrency cap never
  binds): both clients then put the very same arrivals on the server, and every shared
  figure, the TTFT included, must be within 10%. Measured (medians of five rounds, 16
  prompts a step): TTFT p50 console / vLLM 0.97-0.99 (single rounds 0.95-1.02), every other
  figure 0.98-1.02; in a first probe of three rounds, 0.97-1.00 (one round 0.74, the first
  paced run after the closed-loop ones: outvoted). On the same machine that day the
  closed-loop TTFT came 1.01-1.05: how far the pace moves it depends on the machine.
  The 8-prompt, 32-token sweep of the acceptance runs first, headless, checked against the
  server's counters.

From the tab: the console's Bench tab, driven by Pilot, runs the same sweep against the same
kind of server and each step matches the server's counters.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Select

from tests.e2e.test_console_real import own_cores
from tests.e2e.test_real_serve import drain, server_session, start_serve, wait_gone, wait_ready
from tests.fakes.net import free_port
from tests.widgets.console_helpers import wait_until
from vllm_console.app import VllmConsoleApp
from vllm_console.config import load_settings
from vllm_console.core.serve.proctable import session_pids
from vllm_console.widgets.bench.panel import BenchPanel

pytestmark = pytest.mark.e2e
TOLERANCE = 0.10
ROUNDS = 7  # the median of seven pairs: three pairs upset by whatever else ran are outvoted
# Per run and step: 8 prompts take a second at concurrency 1, and one request held up for
# 100 ms moved a throughput by 10%; 32 prompts take four.
PROMPTS = 32
LONG_INPUT = 1536
# Medians, totals and throughputs: the p99 of 8 requests is one request, too noisy to compare.
SHARED = (
    "completed", "failed", "total_input_tokens", "total_output_tokens", "request_throughput",
    "output_throughput", "total_token_throughput", "ttft_p50_ms", "tpot_p50_ms", "itl_p50_ms",
    "e2el_p50_ms",
)  # fmt: skip


def bench(
    env: dict[str, str],
    cwd: Path,
    url: str,
    client: str,
    prompts: int,
    input_len: int = 32,
    rate: str = "inf",
) -> dict[str, Any]:
    argv = [sys.executable, "-m", "vllm_console", "bench", "--base-url", url, "--json"]
    argv += ["--concurrency", "1,2", "--num-prompts", str(prompts)]
    argv += ["--input-len", str(input_len)]
    argv += ["--output-len", "16", "--client", client]
    argv += ["--request-rate", rate, "--burstiness", "inf"]
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    record: dict[str, Any] = json.loads(done.stdout)
    return record


def check_counts(
    record: dict[str, Any], prompts: int, exact_input: bool, input_len: int = 32
) -> None:
    steps = record["steps"]
    assert isinstance(steps, list) and [s["concurrency"] for s in steps] == [1, 2]
    for step in steps:
        assert (step["completed"], step["failed"]) == (prompts, 0), step
        assert step["total_output_tokens"] == 16 * prompts  # ignore_eos: exact
        # both send text; vLLM's may keep a prompt a token off after its ten tries
        slack = 0 if exact_input else prompts
        assert abs(step["total_input_tokens"] - input_len * prompts) <= slack, step
        assert step["server"]["requests"] == prompts and step["mismatch"] is None, step
        assert step["server"]["generation_tokens"] == 16 * prompts


# How fast the server itself says it was over a step (its histograms' means), by figure: a
# time is divided by it, a rate multiplied; counts stand as they are. TTFT is compared as
# measured (see the module's notes): the server's TTFT and prefill time move with the
# client's pace, and are only printed beside it.
BY_SERVER = {
    "tpot_p50_ms": ("itl_mean_ms", -1), "itl_p50_ms": ("itl_mean_ms", -1),
    "e2el_p50_ms": ("e2el_mean_ms", -1), "request_throughput": ("e2el_mean_ms", 1),
    "output_throughput": ("e2el_mean_ms", 1), "total_token_throughput": ("e2el_mean_ms", 1),
}  # fmt: skip
SHOWN = {**{name: key for name, (key, _) in BY_SERVER.items()}, "ttft_p50_ms": "prefill_mean_ms"}
# With every request sent at once the TTFT moves with the engine's speed, which the client's
# own pace changes by 15-30% on this machine (see the module's notes): judged there within
# 30%, which still catches a client that measures it differently (the first versions were 2x
# apart). Paced, both clients make the same load, and it is judged within 10% like the rest.
LOOSE = {"ttft_p50_ms"}
LOOSE_TOLERANCE = 0.30
# Paced rounds: evenly spaced at 4 a second; a request (~55 ms here) ends before the next is
# due, so both clients put the same arrivals on the server. 16 prompts: 4 s a step.
RATE = "4"
PACED_PROMPTS = 16
PACED_ROUNDS = 5


def as_the_server_ran(step: dict[str, Any], name: str) -> float:
    """A client's figure over the server's own speed in that step: what is left is the
    client's measuring."""
    value = float(step[name])
    if name not in BY_SERVER:
        return value
    key, power = BY_SERVER[name]
    speed = step["server"][key]
    assert speed, f"the server gave no {key} for the step: {step['server']}"
    return value * float(speed) ** power


def compare(
    runs: dict[str, list[dict[str, Any]]], loose: frozenset[str] = frozenset()
) -> tuple[list[str], list[str]]:
    """Each shared figure, per round: console / vLLM, each figure first put over the server's
    own speed in its step (`as_the_server_ran`); the median over the rounds must be within 10%
    of 1. The server's speed is taken out because it moved between runs seconds apart by
    30-50%, in steps (per-token 5.3 ms, then 3.8, then 2.7 ms), for both clients alike; what
    the comparison is after is whether the two clients measure the same server the same way.
    The figures in `loose` are judged within LOOSE_TOLERANCE instead."""
    report: list[str] = []
    apart: list[str] = []
    for index, level in enumerate((1, 2)):
        for name in SHARED:
            steps = {
                client: [r["steps"][index] for r in records] for client, records in runs.items()
            }
            ratios = [
                ours / theirs if theirs else 1.0 + (ours != 0)
                for ours, theirs in (
                    (as_the_server_ran(a, name), as_the_server_ran(b, name))
                    for a, b in zip(steps["console"], steps["vllm"], strict=True)
                )
            ]
            ratio = statistics.median(ratios)
            raw = {c: [round(float(s[name]), 2) for s in seen] for c, seen in steps.items()}
            line = (
                f"c{level} {name}: console/vllm {ratio:.3f} "
                f"(rounds {[round(r, 2) for r in ratios]}; "
                f"as measured: console {raw['console']}, vllm {raw['vllm']})"
            )
            report.append(line)
            if name in SHOWN:
                key = SHOWN[name]
                by = {
                    c: [round(float(s["server"][key] or 0), 2) for s in seen]
                    for c, seen in steps.items()
                }
                report.append(f"  server's {key}: console {by['console']}, vllm {by['vllm']}")
            if abs(ratio - 1) > (LOOSE_TOLERANCE if name in loose else TOLERANCE):
                apart.append(line)
    return report, apart


def test_bench_both_clients_agree_and_match_the_counters(
    real_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    cwd = Path(real_env["HOME"]).parent / "cwd"
    proc = start_serve(real_env, port, cwd, max_model_len=LONG_INPUT + 64)
    sid = None
    try:
        wait_ready(proc, port)
        drain(proc)
        sid = server_session(port)
        url = f"http://127.0.0.1:{port}/v1"
        runs: dict[str, list[dict[str, Any]]] = {"console": [], "vllm": []}
        paced: dict[str, list[dict[str, Any]]] = {"console": [], "vllm": []}
        with own_cores(session_pids(sid)):  # the bench processes inherit the other cores
            # the sweep of the acceptance, headless: 8 prompts, each step against the counters
            # (and the server's first load: what it compiles or caches on it is not timed)
            check_counts(bench(real_env, cwd, url, "console", 8), 8, exact_input=True)
            for round_ in range(ROUNDS):  # who goes first alternates: a drift favours neither
                for client in ("console", "vllm")[:: 1 if round_ % 2 == 0 else -1]:
                    runs[client].append(bench(real_env, cwd, url, client, PROMPTS, LONG_INPUT))
            for round_ in range(PACED_ROUNDS):
                for client in ("console", "vllm")[:: 1 if round_ % 2 == 0 else -1]:
                    paced[client].append(
                        bench(real_env, cwd, url, client, PACED_PROMPTS, LONG_INPUT, RATE)
                    )
        for group, prompts in ((runs, PROMPTS), (paced, PACED_PROMPTS)):
            for client, records in group.items():
                for record in records:
                    assert record["source"] == client
                    check_counts(record, prompts, client == "console", LONG_INPUT)
        report, apart = compare(runs, frozenset(LOOSE))
        paced_report, paced_apart = compare(paced)
        print("\n".join(["all at once:", *report, f"paced at {RATE} req/s:", *paced_report]))
        assert not apart, "the two clients disagree all at once:\n" + "\n".join(apart)
        assert not paced_apart, "the two clients disagree paced:\n" + "\n".join(paced_apart)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(60)
        if sid is not None:
            assert wait_gone(sid, 30) == []


async def test_bench_from_the_tab_matches_the_counters(
    real_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    cwd = Path(real_env["HOME"]).parent / "cwd"
    proc = start_serve(real_env, port, cwd)
    sid = None
    try:
        wait_ready(proc, port)
        drain(proc)
        sid = server_session(port)
        for key in [k for k in os.environ if k.startswith(("VLLM_", "HF_"))]:
            monkeypatch.delenv(key)
        for key, value in real_env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("VLLM_BASE_URL", f"http://127.0.0.1:{port}/v1")
        settings = load_settings(environ=dict(os.environ), cwd=cwd, home=Path(real_env["HOME"]))
        app = VllmConsoleApp(settings)
        async with app.run_test(size=(140, 50)) as pilot:
            await app.panes_ready.wait()
            await pilot.press("b")
            bench = app.query_one(BenchPanel)
            assert bench.target.base_url == settings.base_url
            form = {"levels": "1,2", "prompts": "8", "input-len": "32", "output-len": "16"}
            for field, value in form.items():
                bench.query_one(f"#bench-{field}", Input).value = value
            bench.query_one("#bench-client", Select).value = "console"
            await pilot.pause()
            with own_cores(session_pids(sid)):
                await pilot.click("#bench-run")
                await wait_until(pilot, lambda: bench.record is not None, 240, "the sweep")
            record = bench.record
            assert record is not None and record.status == "done", record
            assert [s.concurrency for s in record.steps] == [1, 2]
            for step in record.steps:
                assert (step.completed, step.failed, step.total_output_tokens) == (8, 0, 128)
                assert step.total_input_tokens == 256
                assert step.server is not None and step.server.requests == 8, step
                assert step.server.generation_tokens == 128 and step.mismatch is None
            assert [bar.progress.done for bar in bench.bars.values() if bar.progress] == [8, 8]
            assert (settings.runs_dir / record.id / "bench.json").is_file()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(60)
        if sid is not None:
            assert wait_gone(sid, 30) == []
