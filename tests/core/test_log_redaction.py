"""The server's log never shows the API key: not to the session's readers, not in the run's
log.txt, not in what the watchdog copies for a server left running; and the key is in the
server's environment, never in its command line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.fakes.net import free_port

from vllm_console.config import Settings
from vllm_console.core.serve.process import ServerProcess
from vllm_console.core.serve.proctable import session_pids
from vllm_console.core.serve.runs import RunArchive
from vllm_console.core.serve.session import ServerSession, SessionEnded, Spawned
from vllm_console.core.serve.spec import LaunchSpec, serve_args
from vllm_console.core.serve.supervisor import LogLine, Ready

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_vllm.py"
KEY = "sk-log-secret-7"


@pytest.fixture
def pids() -> Iterator[list[int]]:
    started: list[int] = []
    yield started
    for pid in started:
        if session_pids(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


async def test_the_session_redacts_every_line_and_the_server_needs_the_key(
    tmp_path: Path, pids: list[int]
) -> None:
    settings = Settings(home=tmp_path, state_dir=tmp_path / "state", stop_timeout=3.0)
    spec = LaunchSpec(
        "/m/tiny", port=free_port(), api_key=KEY, extra_env={"FAKE_VLLM_DELAY": "0.2"}
    )
    # the stand-in echoes unknown flags in its "non-default args" line: the key reaches its log
    argv = [sys.executable, str(FAKE), "serve", *serve_args(spec), "--echo", f"x{KEY}y"]
    session = ServerSession(settings, model="org/tiny", spec=spec, argv=argv)
    lines: list[str] = []
    cmdlines: list[bytes] = []
    codes: list[int] = []
    async with contextlib.aclosing(session.events()) as events:
        async for event in events:
            if isinstance(event, Spawned):
                pids.append(event.pid)
            elif isinstance(event, LogLine):
                lines.extend(event.lines)
            elif isinstance(event, Ready):
                assert session.pid is not None
                for pid in session_pids(session.pid):
                    cmdlines.append(Path(f"/proc/{pid}/cmdline").read_bytes())
                url = f"http://127.0.0.1:{spec.port}/v1/models"
                async with httpx.AsyncClient() as client:
                    codes.append((await client.get(url)).status_code)
                    auth = {"Authorization": f"Bearer {KEY}"}
                    codes.append((await client.get(url, headers=auth)).status_code)
                session.stop()
    assert isinstance(event, SessionEnded) and event.stopped
    assert codes == [401, 200]  # the key reached vLLM through its environment
    assert cmdlines and not any(b"--api-key" in c for c in cmdlines)
    assert any("x***y" in line for line in lines)
    assert not any(KEY in line for line in lines)
    (run,) = RunArchive(settings.runs_dir).all()
    assert "x***y" in run.log_path.read_text() and KEY not in run.log_path.read_text()
    assert run.env["VLLM_API_KEY"] == "***"


# Prints the key across a 64 KiB read of the watchdog, then alone, then ends with a marker.
TALKER = """
import sys, time
key = sys.argv[1]
time.sleep(0.5)
sys.stdout.write("a" * 65530 + key + "b\\n")
sys.stdout.flush()
time.sleep(0.1)
sys.stdout.write(key[:3])
sys.stdout.flush()
time.sleep(0.1)
sys.stdout.write(key[3:] + "\\nEND\\n")
"""


async def test_the_watchdog_redacts_what_it_copies(tmp_path: Path, pids: list[int]) -> None:
    log = tmp_path / "log.txt"
    # the key is on this test double's command line only to make it print; not so for vLLM
    argv = [sys.executable, "-c", TALKER, KEY]
    server = ServerProcess(argv, {}, detachable=True, detached_log=log, secrets=(KEY,))
    await server.start()
    assert server.pid is not None
    pids.append(server.pid)
    assert server.detach()
    deadline = time.monotonic() + 10
    while not (log.exists() and log.read_text().endswith("END\n")):
        assert time.monotonic() < deadline, "the watchdog wrote no END"
        await asyncio.sleep(0.05)
    text = log.read_text()
    assert KEY not in text and text == "a" * 65530 + "***b\n***\nEND\n"
    assert log.stat().st_mode & 0o777 == 0o600
