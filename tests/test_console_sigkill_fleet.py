"""The no-orphans promise for a fleet in the console: the console, opened on a fleet file of
three stand-in servers in a real terminal, is killed outright once all answer; every server's
whole session is gone within 20 s (each has its own watchdog)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.fakes.net import free_port
from vllm_console.core.serve.proctable import port_holders, session_pids

FAKE = Path(__file__).resolve().parent / "fakes" / "fake_vllm.py"
SERVERS = 3


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _drain(fd: int, seconds: float) -> None:
    """Read what the console paints (a full terminal would stall it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                os.read(fd, 65536)
            except OSError:
                return


def test_sigkill_of_the_console_takes_every_server_of_its_fleet_down(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(SERVERS)]
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "servers:\n"
        + "".join(f"  s{i}:\n    model: /m/tiny-{i}\n    port: {p}\n" for i, p in enumerate(ports))
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_"))}
    env = {
        **base,
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "VLLM_CONSOLE_VLLM": f"{sys.executable} {FAKE}",
        "FAKE_VLLM_DELAY": "0.2",
        "TERM": "xterm-256color",
    }
    main, child = pty.openpty()
    console = subprocess.Popen(
        [sys.executable, "-m", "vllm_console", "--fleet", str(fleet)],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    os.close(child)
    sessions: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not all(map(_answers, ports)):
            assert console.poll() is None, "the console ended"
            assert time.monotonic() < deadline, "the fleet never answered"
            _drain(main, 0.2)
        sessions = [port_holders(port)[0].session for port in ports]
        assert len(set(sessions)) == SERVERS and os.getsid(console.pid) not in sessions
        console.kill()
        console.wait(timeout=10)
        deadline = time.monotonic() + 20
        while any(map(session_pids, sessions)) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = {sid: session_pids(sid) for sid in sessions if session_pids(sid)}
    finally:
        if console.poll() is None:
            console.kill()
        os.close(main)
        for sid in sessions:
            if session_pids(sid):
                os.killpg(sid, signal.SIGKILL)
    assert left == {}, f"alive 20 s after the console was killed: {left}"
