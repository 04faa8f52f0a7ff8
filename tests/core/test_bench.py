"""The benchmark against the vLLM stand-in (tests/fakes/fake_vllm.py, a real child process):
the metric definitions, a sweep checked against the server's counters, an endpoint that dies
mid-run, cancelling (the server stops generating), `vllm bench serve` that fails or
succeeds (stand-ins of it), and the headless command with its bad arguments."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fakes.bench_server import BenchServer

from vllm_console.core.bench.archive import all_benches, save
from vllm_console.core.bench.counters import between, parse_counters, read_counters
from vllm_console.core.bench.load import Target, client_for, run_step
from vllm_console.core.bench.prompts import ServerTokenizer, random_prompts
from vllm_console.core.bench.stats import RequestResult, percentile, summarize
from vllm_console.core.bench.sweep import BenchConfig, Finding, StepDone, StepStarted, Sweep
from vllm_console.core.endpoint.client import make_client
from vllm_console.core.serve.install import VllmCommand

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[BenchServer]:
    server = BenchServer(tmp_path)
    yield server
    server.kill()


def test_figures_are_defined_as_vllm_defines_them() -> None:
    assert percentile([], 99) == 0.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5  # numpy's linear interpolation
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == pytest.approx(3.97)
    ok = RequestResult(True, ttft_s=0.1, latency_s=0.5, itl_s=(0.1,) * 4, output_tokens=5,
                       prompt_tokens=32)  # fmt: skip
    one = RequestResult(True, ttft_s=0.2, latency_s=0.2, output_tokens=1, prompt_tokens=32)
    step = summarize([ok, one, RequestResult(False, error="boom")], concurrency=2, duration_s=2.0)
    assert (step.completed, step.failed, step.errors) == (2, 1, ("boom",))
    assert step.total_output_tokens == 6 and step.total_input_tokens == 64
    assert step.output_throughput == 3.0 and step.request_throughput == 1.0
    assert step.total_token_throughput == 35.0
    assert step.tpot_p50_ms == pytest.approx(100.0)  # (0.5 - 0.1) / 4; one-token requests out
    assert step.ttft_p50_ms == pytest.approx(150.0) and step.e2el_p50_ms == pytest.approx(350.0)
    assert step.itl_p50_ms == pytest.approx(100.0)


async def test_a_sweep_is_checked_against_the_servers_counters(
    fake: BenchServer, tmp_path: Path
) -> None:
    await fake.ready()
    events: list[object] = []
    config = BenchConfig(fake.url, concurrency=(1, 3), num_prompts=6, input_len=32, output_len=16,
                         client="console")  # fmt: skip
    record = await Sweep(config, None, events.append).run()
    assert record.status == "done" and record.source == "console", record.findings
    assert [s.concurrency for s in record.steps] == [1, 3]
    for step in record.steps:
        assert (step.completed, step.failed) == (6, 0)
        assert step.total_output_tokens == 6 * 16  # ignore_eos: exact lengths
        # text of 31 tokens, decoded by /detokenize; the server adds its one special token
        assert step.total_input_tokens == 6 * 32
        assert step.server is not None and step.server.requests == 6
        assert step.server.prompt_tokens == 6 * 32
        assert step.server.generation_tokens == 96 and step.mismatch is None
    assert sum(isinstance(e, StepDone) for e in events) == 2
    assert not record.findings  # the stand-in tokenizes: no word prompts
    saved = save(tmp_path / "runs", record)
    [back] = all_benches(tmp_path / "runs")
    assert back.id == saved.id and back.steps == record.steps and back.model == "tiny"


def metrics_text(requests: int, ttft_s: float, itl_s: float, tokens: int) -> str:
    """vLLM's /metrics, abridged: two engines' series, buckets included (and not read)."""
    lines = []
    for engine in ("0", "1"):
        label = f'{{engine="{engine}",model_name="tiny"}}'
        lines += [f'vllm:request_success_total{{engine="{engine}",finished_reason="length"}} '
                  f"{requests}", f"vllm:generation_tokens_total{label} {tokens}"]  # fmt: skip
        for name, total, count in (("time_to_first_token", ttft_s, requests),
                                   ("inter_token_latency", itl_s, tokens - requests),
                                   ("e2e_request_latency", ttft_s + itl_s, requests),
                                   ("request_prefill_time", ttft_s / 2, requests)):  # fmt: skip
            lines.append(f'vllm:{name}_seconds_bucket{{le="0.1",engine="{engine}"}} {count}')
            lines += [f"vllm:{name}_seconds_sum{label} {total}",
                      f"vllm:{name}_seconds_count{label} {count}"]  # fmt: skip
    return "# TYPE x counter\n" + "\n".join(lines) + "\n"


def test_a_step_keeps_the_servers_own_mean_latencies() -> None:
    before = parse_counters(metrics_text(10, 1.0, 2.0, 170))
    after = parse_counters(metrics_text(14, 1.2, 2.6, 234))  # 4 requests of 16 tokens each
    counts = between(before, after)
    assert counts is not None and counts.requests == 8 and counts.generation_tokens == 128
    assert counts.ttft_mean_ms == pytest.approx(50.0)  # 0.4 s over 8 first tokens
    assert counts.itl_mean_ms == pytest.approx(10.0)  # 1.2 s over 120 later tokens
    assert counts.e2el_mean_ms == pytest.approx(200.0)
    assert counts.prefill_mean_ms == pytest.approx(25.0)  # the engine's share of the TTFT
    # a server without the histograms (or restarted: sums went down) gives no means
    restarted = between(before, parse_counters(metrics_text(14, 0.5, 2.6, 234)))
    assert restarted is not None and restarted.ttft_mean_ms is None
    bare = parse_counters("vllm:request_success_total 3\n")
    assert between(bare, bare) == type(counts)(0.0) and bare.latencies[0] == (None, None)


async def test_other_traffic_shows_as_a_mismatch(fake: BenchServer) -> None:
    await fake.ready()
    config = BenchConfig(fake.url, concurrency=(2,), num_prompts=4, input_len=8, output_len=40,
                         client="console")  # fmt: skip

    started = asyncio.Event()

    async def intruder() -> None:
        await started.wait()
        async with client_for(1, fake.url) as http:
            await run_step(http, Target(fake.url, "tiny"), ["hi"], 3, 1)

    def on_event(event: object) -> None:
        if isinstance(event, StepStarted):
            started.set()

    record, _ = await asyncio.gather(Sweep(config, None, on_event).run(), intruder())
    assert record.steps[0].mismatch is not None and "server finished 5" in record.steps[0].mismatch


async def test_an_endpoint_that_dies_mid_run_keeps_what_was_measured(tmp_path: Path) -> None:
    server = BenchServer(tmp_path, token_s=0.02)
    try:
        await server.ready()
        config = BenchConfig(server.url, concurrency=(2, 4), num_prompts=12, input_len=8,
                             output_len=10, client="console")  # fmt: skip
        sweep = Sweep(config, None)
        task = asyncio.create_task(sweep.run())
        await asyncio.sleep(1.0)  # a few requests done (each ~0.2 s)
        server.kill()
        record = await asyncio.wait_for(task, 30)
    finally:
        server.kill()
    assert record.status == "failed"
    [step] = record.steps
    assert step.completed >= 2 and step.failed >= 1 and step.completed + step.failed == 12
    assert step.errors and any("stopped answering" in f for f in record.findings)


async def test_cancel_closes_the_connections_and_the_server_stops(tmp_path: Path) -> None:
    server = BenchServer(tmp_path, token_s=0.02)
    try:
        await server.ready()
        config = BenchConfig(server.url, concurrency=(4,), num_prompts=8, input_len=8,
                             output_len=1000, client="console")  # fmt: skip
        sweep = Sweep(config, None)
        task = asyncio.create_task(sweep.run())
        async with make_client(server.url) as http:
            for _ in range(100):
                reading = await read_counters(http, server.url)
                if reading and reading.running == 4:
                    break
                await asyncio.sleep(0.05)
            assert reading and reading.running == 4
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.monotonic() - started < 0.5
            await asyncio.sleep(0.3)  # the stand-in notices at its next token (20 ms)
            after = await read_counters(http, server.url)
        assert after is not None and after.running == 0 and after.requests == 0
        assert sweep.record("cancelled").status == "cancelled"
    finally:
        server.kill()


def _script(code: str) -> VllmCommand:
    return VllmCommand((sys.executable, "-c", code, "serve"), "test", distribution="vllm",
                       version="0.32.0")  # fmt: skip


FAILING = "import sys; print('ModuleNotFoundError: No module named pandas'); sys.exit(1)"
# Writes a result as `vllm bench serve --save-result` does, from its own arguments.
WRITING = """
import json, sys, pathlib
a = sys.argv
out = pathlib.Path(a[a.index('--result-dir') + 1]) / a[a.index('--result-filename') + 1]
n = int(a[a.index('--num-prompts') + 1])
assert a[1:3] == ['bench', 'serve'] and '--ignore-eos' in a
out.write_text(json.dumps({'completed': n, 'failed': 0, 'duration': 1.0,
  'total_input_tokens': 8 * n, 'total_output_tokens': 0, 'request_throughput': n,
  'output_throughput': 0, 'total_token_throughput': 8 * n, 'p50_ttft_ms': 1, 'p99_ttft_ms': 2,
  'p50_tpot_ms': 1, 'p50_itl_ms': 1, 'p99_itl_ms': 2, 'p50_e2el_ms': 3}))
"""


async def test_a_failing_vllm_bench_is_a_finding_with_the_fix(fake: BenchServer) -> None:
    await fake.ready()
    config = BenchConfig(fake.url, concurrency=(1,), num_prompts=2, input_len=8, output_len=4)
    events: list[object] = []
    record = await Sweep(config, _script(FAILING), events.append).run()
    said = [e.text for e in events if isinstance(e, Finding)]
    assert "No module named pandas" in said[0] and "pip install 'vllm[bench]'" in said[0]
    assert record.status == "done" and record.source == "console"  # auto fell back
    strict = await Sweep(
        BenchConfig(**{**config.__dict__, "client": "vllm"}), _script(FAILING)
    ).run()
    assert strict.status == "failed" and not strict.steps


async def test_vllm_bench_results_are_read_back_and_checked(fake: BenchServer) -> None:
    await fake.ready()
    config = BenchConfig(fake.url, concurrency=(1, 2), num_prompts=3, input_len=8, output_len=4)
    record = await Sweep(config, _script(WRITING)).run()
    assert record.status == "done" and record.source == "vllm"
    assert [s.completed for s in record.steps] == [3, 3]
    # the stand-in of the benchmark sent nothing: the server's counters say so
    assert all(s.server is not None and s.mismatch for s in record.steps)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "vllm_console", "bench", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)


def test_the_headless_command(fake: BenchServer, tmp_path: Path) -> None:
    asyncio.run(fake.ready())
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tui"), str(ROOT)])
    for bad in (["--concurrency", "1,x"], ["--concurrency", "0"], ["--num-prompts", "0"],
                ["--dataset", "sharegpt"], ["--dataset", "sharegpt", str(tmp_path / "none")],
                ["--server", "nobody"], ["--client", "other"]):  # fmt: skip
        done = _cli("--base-url", fake.url, *bad, env=env)
        assert done.returncode == 2, (bad, done.stderr)
        assert done.stderr.strip(), bad
    done = _cli("--base-url", fake.url, "--concurrency", "1,2", "--num-prompts", "4",
                "--input-len", "16", "--output-len", "8", "--client", "console", "--json",
                env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert [s["completed"] for s in record["steps"]] == [4, 4]
    assert record["server_version"] and record["config"]["concurrency"] == [1, 2]
    listed = subprocess.run([sys.executable, "-m", "vllm_console", "runs"], capture_output=True,
                            text=True, env=env, timeout=60)  # fmt: skip
    assert record["id"] in listed.stdout and "bench tiny" in listed.stdout


async def test_random_prompts_are_text_of_exact_length_as_vllm_makes_them(
    fake: BenchServer,
) -> None:
    """What `vllm bench serve` sends: text (decoded token ids), one token short of the length
    so that the server's special token makes it whole; words without a tokenizer."""
    await fake.ready()
    async with make_client(fake.url) as http:
        tokenizer = ServerTokenizer(http, fake.url, "tiny", None)
        prompts, exact = await random_prompts(tokenizer, 5, 20, seed=3)
        assert exact and len(prompts) == 5 and len(set(map(str, prompts))) == 5
        for prompt in prompts:
            assert isinstance(prompt, str)
            assert await tokenizer.encode(prompt, special=True) == [
                0,
                *(await tokenizer.encode(prompt) or []),
            ]
            assert len(await tokenizer.encode(prompt) or []) == 19
        again, _ = await random_prompts(tokenizer, 5, 20, seed=3)
        assert again == prompts  # the seed decides
        gone = ServerTokenizer(http, "http://127.0.0.1:9/v1", "tiny", None)
        words, exact = await random_prompts(gone, 2, 7)
        assert not exact and [len(str(w).split()) for w in words] == [7, 7]
