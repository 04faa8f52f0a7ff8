"""A detachable server's watchdog: our SIGKILL takes the server down; detach leaves it up.

The "console" is a child Python process holding a `ServerProcess(detachable=True)` of the
stand-in vLLM, so that it can be killed (or exit after detaching) while we watch.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from vllm_console.core.serve.process import stop_group
from vllm_console.core.serve.proctable import session_pids

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT / "tests" / "fakes" / "fake_vllm.py"
CONSOLE = """
import asyncio, sys
from pathlib import Path
from vllm_console.core.serve.process import ServerProcess
async def main(mode, log):
    server = ServerProcess([sys.executable, sys.argv[3], "serve", "/m", "--port", "0"],
                           {"FAKE_VLLM_DELAY": "0.2"}, detachable=True, watchdog_grace=2,
                           detached_log=Path(log))
    async with server:
        async for line in server.lines():
            if "startup complete" in line:
                break
        print(server.pid, flush=True)
        if mode == "detach":
            server.detach()
            return
        await asyncio.sleep(60)
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def start_console(mode: str, log: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CONSOLE, mode, str(log), str(FAKE)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "tui"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def wait_gone(sid: int, limit: float) -> list[int]:
    deadline = time.monotonic() + limit
    while session_pids(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return session_pids(sid)


def test_sigkill_of_the_console_stops_the_server(tmp_path: Path) -> None:
    console, sid = start_console("wait", tmp_path / "log.txt")
    assert len(session_pids(sid)) == 3  # API server, EngineCore, Worker
    console.kill()
    console.wait()
    left = wait_gone(sid, 10)
    assert left == []


def test_detach_leaves_the_server_running_and_keeps_its_log(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    console, sid = start_console("detach", log)
    try:
        assert console.wait(timeout=10) == 0
        time.sleep(0.5)
        assert len(session_pids(sid)) == 3, "the server should outlive the console"
    finally:
        report = asyncio.run(stop_group(sid, 2.0))
    assert report.clean and not report.killed
    time.sleep(0.3)
    assert "Shutting down" in log.read_text()  # written by the watchdog after we left
