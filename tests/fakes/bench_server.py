"""The stand-in vLLM as a benchmark's target: started in a session of its own, answering
completions token by token every `token_s` seconds; shared by the bench's core and tab tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.fakes.net import free_port
from vllm_console.core.bench.counters import read_counters
from vllm_console.core.endpoint.client import make_client, probe

FAKE_VLLM = Path(__file__).resolve().parent / "fake_vllm.py"


class BenchServer:
    def __init__(self, tmp: Path, token_s: float = 0.005, name: str = "tiny") -> None:
        self.port = free_port()
        env = {**os.environ, "FAKE_VLLM_DELAY": "0.1", "FAKE_VLLM_TOKEN_S": str(token_s)}
        env.pop("FAKE_VLLM_SCENARIO", None)
        cmd = [sys.executable, str(FAKE_VLLM), "serve", "Org/Tiny", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--served-model-name", name]
        with (tmp / f"fake-{self.port}.log").open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=log, env=env, start_new_session=True
            )
        self.url = f"http://127.0.0.1:{self.port}/v1"

    async def ready(self) -> None:
        for _ in range(200):
            if (await probe(self.url, timeout=0.5)).ok:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the stand-in did not come up")

    async def running(self) -> float | None:
        """The server's running-requests gauge."""
        async with make_client(self.url) as http:
            reading = await read_counters(http, self.url)
        return None if reading is None else reading.running

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
