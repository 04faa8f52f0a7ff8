"""What a benchmark costs its client: event-loop lag with 64 streams, CPU per request.

    .venv/bin/python bench/bench_bench_cost.py [--prompts 256] [--vllm-python PY --tokenizer DIR]

Against the stand-in server (tests/fakes/fake_vllm.py, 10 ms a token, 64 output tokens):

- lag: the console's load runner (`core.bench.load.run_step`) at concurrency 64 in this
  process, with a ticker that sleeps 10 ms and records how late it wakes: p99 of the lag.
  Target: p99 <= 50 ms.
- cpu: this process's CPU time over the step, per request; beside it, with `--vllm-python`
  (an environment with vLLM) and `--tokenizer` (a model folder for its prompts), the CPU of
  `vllm bench serve` on the same load, per request: the marginal cost, from runs of N
  prompts and of 4N, the cheapest of two each (its start-up, importing vLLM, cancels out;
  it varies by more than N requests cost, hence the spread and the repeats).

Exit status 1 when the lag target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tui"), str(ROOT)]

from tests.fakes.net import free_port  # noqa: E402

from vllm_console.core.bench.load import Target, client_for, run_step  # noqa: E402
from vllm_console.core.bench.stats import percentile  # noqa: E402
from vllm_console.core.bench.vllm_bench import Load, bench_prefix, run_vllm_step  # noqa: E402
from vllm_console.core.endpoint.client import probe  # noqa: E402
from vllm_console.core.serve.install import find_vllm  # noqa: E402

CONCURRENCY = 64
OUTPUT = 64
LAG_TARGET_MS = 50.0


def start_fake() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "FAKE_VLLM_DELAY": "0.1", "FAKE_VLLM_TOKEN_S": "0.01"}
    cmd = [sys.executable, str(ROOT / "tests/fakes/fake_vllm.py"), "serve", "tiny"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        start_new_session=True,
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}/v1"


async def ready(url: str) -> None:
    for _ in range(200):
        if (await probe(url, timeout=0.5)).ok:
            return
        await asyncio.sleep(0.05)
    raise SystemExit("the stand-in did not come up")


async def ours(url: str, prompts: int) -> tuple[float, float, int]:
    """(p99 lag ms, CPU ms per request, completed)."""
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(max(0.0, time.perf_counter() - t - 0.01))

    tick = asyncio.create_task(ticker())
    cpu = time.process_time()
    async with client_for(CONCURRENCY, url) as http:
        words = ["hello world " * 16] * prompts
        step = await run_step(http, Target(url, "tiny"), words, OUTPUT, CONCURRENCY)
    cpu = time.process_time() - cpu
    stop.set()
    await tick
    return percentile(lags, 99) * 1000, cpu * 1000 / max(step.completed, 1), step.completed


async def theirs(url: str, python: str, tokenizer: str, prompts: int) -> float:
    """vllm bench serve's marginal CPU ms per request."""
    prefix, why = bench_prefix(find_vllm(python))
    if not prefix:
        raise SystemExit(f"vllm bench serve cannot run: {why}")
    spent = {}
    for n in (prompts, 4 * prompts):
        for _ in range(2):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            load = Load(url, "tiny", tokenizer, n, 32, OUTPUT)
            await run_vllm_step(prefix, load, CONCURRENCY)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            spent[n] = min(cpu, spent.get(n, cpu))
    return (spent[4 * prompts] - spent[prompts]) * 1000 / (3 * prompts)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--vllm-python", help="python of an environment with vLLM")
    parser.add_argument("--tokenizer", help="a model folder, for vllm bench serve's prompts")
    args = parser.parse_args()
    proc, url = start_fake()
    try:
        await ready(url)
        lag, cpu, done = await ours(url, args.prompts)
        print(f"console client: {done} requests at concurrency {CONCURRENCY}: "
              f"p99 loop lag {lag:.1f} ms (target <= {LAG_TARGET_MS:.0f}), "
              f"CPU {cpu:.2f} ms per request")  # fmt: skip
        if args.vllm_python and args.tokenizer:
            vllm_cpu = await theirs(url, args.vllm_python, args.tokenizer, args.prompts)
            print(f"vllm bench serve: CPU {vllm_cpu:.2f} ms per request (marginal)")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return 0 if lag <= LAG_TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
