"""The console against a real vLLM (CPU build) on a tiny model.

1. Pilot drives the App in this process: select the model, launch, ready, milestones in the
   log pane, stop; no process of the server's session survives and the port is free.
2. The console runs as a program in a pseudo-terminal, launches from its keys, and is killed
   with SIGKILL while the server runs: the server's whole session must be gone within 20 s.
"""

from __future__ import annotations

import hashlib
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import TINY_ID
from tests.widgets.console_helpers import free_port, wait_until
from vllm_console.app import VllmConsoleApp
from vllm_console.config import load_settings
from vllm_console.core.diagnose import Phase
from vllm_console.core.entry import Source
from vllm_console.core.launch import LaunchSpec, save_spec
from vllm_console.core.procs import port_holders, port_is_free, session_pids
from vllm_console.screens.launch import LaunchScreen
from vllm_console.widgets.log_view import BufferedLog

pytestmark = pytest.mark.e2e
READY_LIMIT = 180.0


def tiny_key(real_env: dict[str, str]) -> tuple[str, Path]:
    """The catalog key and snapshot path of the tiny model in real_env's HF cache."""
    repo = Path(real_env["HF_HOME"]) / "hub" / ("models--" + TINY_ID.replace("/", "--"))
    snapshot = repo / "snapshots" / hashlib.sha1(TINY_ID.encode()).hexdigest()
    return f"{Source.HF_CACHE}:{snapshot}", snapshot


def save_tiny_spec(real_env: dict[str, str], port: int) -> None:
    """What a user would have chosen last time: small, eager, bf16 (prefills the dialog)."""
    key, snapshot = tiny_key(real_env)
    spec = LaunchSpec(
        str(snapshot),
        served_model_name=TINY_ID,
        port=port,
        max_model_len=512,
        dtype="bfloat16",
        enforce_eager=True,
    )
    save_spec(Path(real_env["XDG_CONFIG_HOME"]) / "vllm-console" / "launch-specs.json", key, spec)


async def test_pilot_launch_ready_and_clean_stop(
    real_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith(("VLLM_", "HF_"))]:
        monkeypatch.delenv(key)
    for key, value in real_env.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    save_tiny_spec(real_env, port)
    cwd = Path(real_env["HOME"]).parent / "cwd"
    settings = load_settings(environ=dict(os.environ), cwd=cwd, home=Path(real_env["HOME"]))
    app = VllmConsoleApp(settings)
    async with app.run_test(size=(140, 44)) as pilot:
        await wait_until(pilot, lambda: app.catalog_entries, 30, "the tiny model")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen), 30, "the dialog")
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        go = screen.query_one("#launch-go")
        await wait_until(pilot, lambda: not go.disabled, 60, "vLLM to be found")
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: app.server_state.phase is Phase.READY, READY_LIMIT, "ready")
        await pilot.pause(0.3)
        lines = app.query_one("#server-log", BufferedLog).all_lines
        for milestone in ("Loading weights took", "Starting vLLM server", "startup complete"):
            assert any(milestone in line for line in lines), milestone
        phases = [name for name, _ in app.server_state.phase_times]
        assert phases[:2] == ["starting", "loading weights"]
        sid = port_holders(port)[0].session
        reply = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10)
        assert reply.json()["data"][0]["id"] == TINY_ID
        await pilot.press("s")
        await wait_until(pilot, lambda: app.server_state.phase is Phase.STOPPED, 60, "stopped")
    assert session_pids(sid) == []
    assert port_is_free("127.0.0.1", port)


def read_screen(fd: int, seconds: float) -> bytes:
    """What the console painted in the next `seconds` (the pty must be drained anyway)."""
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    return out


def test_sigkill_of_the_console_takes_the_server_down(real_env: dict[str, str]) -> None:
    port = free_port()
    save_tiny_spec(real_env, port)
    env = {**real_env, "TERM": "xterm-256color", "COLUMNS": "140", "LINES": "44"}
    main, child = pty.openpty()
    os.set_inheritable(child, True)
    console = subprocess.Popen(
        [sys.executable, "-m", "vllm_console"],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        cwd=Path(real_env["HOME"]).parent / "cwd",
        start_new_session=True,
    )
    os.close(child)
    sid = None
    try:
        seen = read_screen(main, 8)
        assert b"tiny-llama" in seen, "the tiny model is not listed"
        os.write(main, b"\r")  # enter: the launch dialog
        read_screen(main, 6)  # vLLM is looked for meanwhile
        os.write(main, b"\x0c")  # ctrl+l: launch
        deadline = time.monotonic() + READY_LIMIT
        while time.monotonic() < deadline:
            read_screen(main, 1)
            holders = port_holders(port)
            if holders and _healthy(port):
                sid = holders[0].session
                break
        assert sid is not None, "not ready in time"
        engine = [p for p in session_pids(sid) if _comm(p).startswith("VLLM::")]
        assert engine, "vLLM's renamed engine process not found"
        console.kill()
        console.wait(timeout=10)
        deadline = time.monotonic() + 20
        while session_pids(sid) and time.monotonic() < deadline:
            read_screen(main, 0.2)
        left = session_pids(sid)
    finally:
        if console.poll() is None:
            console.kill()
        os.close(main)
    if left:
        os.killpg(sid, signal.SIGKILL)
    assert left == [], f"left alive 20 s after the console's SIGKILL: {left}"
    assert port_is_free("127.0.0.1", port)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return ""
