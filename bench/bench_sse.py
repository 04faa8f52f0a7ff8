"""CPU time per SSE event: vllm-console's chat stream against the `openai` SDK's, same server.

The server (tests/fakes/fake_openai.py) runs in its own process and streams N content chunks,
each its own HTTP chunk, as uvicorn does. Each client runs in a fresh subprocess: it imports
its library, streams a short warm-up answer (connection, lazy imports), then one answer of N
events, and reports `time.process_time()` around that answer alone: the CPU the client spent
receiving, parsing and handing out the events. The clients alternate run by run; medians are
compared.

    .venv/bin/python bench/bench_sse.py [--events 20000] [--runs 3]

vllm-console: `core.endpoint.stream_chat` on an `httpx.AsyncClient` (`Delta` events).
openai: `AsyncOpenAI().chat.completions.create(stream=True)`, reading `delta.content`.
Target (from the issue): at least 5x less CPU per event than the SDK. Exit status 1 when the
target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "fakes" / "fake_openai.py"
TARGET_RATIO = 5.0
MODEL = "fake-model"
HI = [{"role": "user", "content": "hi"}]
CLIENTS = ("vllm-console", "openai")


async def _ours(base_url: str, events: int) -> tuple[float, int]:
    from vllm_console.core.endpoint.client import Delta, make_client, stream_chat

    async with make_client(base_url) as client:
        async for _ in stream_chat(client, base_url, None, MODEL, HI, max_tokens=5):
            pass
        text: list[str] = []
        start = time.process_time()
        async for event in stream_chat(client, base_url, None, MODEL, HI, max_tokens=events):
            if type(event) is Delta:
                text.append(event.text)
        return time.process_time() - start, len(text)


async def _openai(base_url: str, events: int) -> tuple[float, int]:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletionUserMessageParam

    hi: list[ChatCompletionUserMessageParam] = [{"role": "user", "content": "hi"}]
    async with AsyncOpenAI(base_url=base_url, api_key="none") as client:
        warm = await client.chat.completions.create(
            model=MODEL, messages=hi, stream=True, max_tokens=5
        )
        async for _ in warm:
            pass
        text: list[str] = []
        start = time.process_time()
        stream = await client.chat.completions.create(
            model=MODEL, messages=hi, stream=True, max_tokens=events
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
        return time.process_time() - start, len(text)


def client_main(name: str, base_url: str, events: int) -> int:
    """In the client subprocess: one measured answer, the result as JSON on stdout."""
    run = _ours if name == "vllm-console" else _openai
    cpu, got = asyncio.run(run(base_url, events))
    print(json.dumps({"cpu_s": cpu, "events": got}))
    return 0 if got == events else 1


def measure(name: str, base_url: str, events: int) -> tuple[float, int]:
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "PYTHONPATH": str(ROOT / "tui")}
    argv = [sys.executable, __file__, "--client", name, "--base-url", base_url]
    done = subprocess.run(
        [*argv, "--events", str(events)], capture_output=True, text=True, env=env, timeout=600
    )
    if done.returncode != 0:
        raise SystemExit(f"{name} client failed:\n{done.stdout}{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["cpu_s"]), int(result["events"])


def start_server(events: int) -> tuple[subprocess.Popen[str], str]:
    argv = [sys.executable, str(SERVER), "--port", "0", "--tokens", str(events)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="content events per answer")
    parser.add_argument("--runs", type=int, default=3, help="answers per client (median)")
    parser.add_argument("--client", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        return client_main(args.client, args.base_url, args.events)

    proc, base_url = start_server(args.events)
    cpu: dict[str, list[float]] = {name: [] for name in CLIENTS}
    try:
        for run in range(args.runs):
            for name in CLIENTS if run % 2 == 0 else CLIENTS[::-1]:
                seconds, got = measure(name, base_url, args.events)
                cpu[name].append(seconds)
                print(f"  run {run + 1} {name:<13} {seconds:7.3f} s CPU for {got} events")
    finally:
        proc.terminate()
        proc.wait(10)
    ours, theirs = (statistics.median(cpu[name]) for name in CLIENTS)
    ratio = theirs / ours if ours > 0 else float("inf")
    met = ratio >= TARGET_RATIO
    print()
    header = (
        f"{'client':<14} {'events':>7} {'CPU s':>8} {'µs/event':>9} "
        f"{'ratio':>6} {'target':>8} {'met?':>5}"
    )
    print(header)
    print("-" * len(header))
    for name, seconds in (("vllm-console", ours), ("openai", theirs)):
        per_event = seconds / args.events * 1e6
        row = f"{name:<14} {args.events:>7} {seconds:>8.3f} {per_event:>9.1f}"
        if name == "vllm-console":
            row += f" {ratio:>5.1f}x {'>= 5x':>8} {'yes' if met else 'NO':>5}"
        else:
            row += f" {'1.0x':>6} {'':>8} {'':>5}"
        print(row)
    print(f"\nmedian of {args.runs} run(s) each; ratio = openai CPU / vllm-console CPU")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
