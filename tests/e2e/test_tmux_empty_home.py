"""The console in a real terminal (tmux) with an empty HOME: the empty state, then `q` quits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

CONSOLE = Path(sys.executable).parent / "vllm-console"


# A server of our own (-L): it starts with the clean environment below, not the user's.
SOCKET = f"vllm-console-e2e-{os.getpid()}"


def tmux(*args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["tmux", "-L", SOCKET, *args], check=True, capture_output=True, text=True, env=env
    ).stdout


def wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_empty_home_shows_the_empty_state_and_quits_on_q(tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    session = "console"
    status_file = tmp_path / "exit-status"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "VLLM_", "TMUX"))
    }
    env.update(HOME=str(home), TERM="xterm-256color")
    tmux(
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "120",
        "-y",
        "40",
        "-c",
        str(cwd),
        # The shell records the exit status: tmux's pane_dead_status can lag behind.
        f"{CONSOLE}; echo $? > {status_file}",
        env=env,
    )
    try:
        screen = ""

        def shows_empty_state() -> bool:
            nonlocal screen
            screen = tmux("capture-pane", "-p", "-t", session)
            return "No models found" in screen and "VLLM_CONSOLE_MODEL_DIRS" in screen

        assert wait_for(shows_empty_state, 15), screen
        assert str(home / ".cache" / "huggingface" / "hub") in screen
        assert "press d to download" in screen
        tmux("send-keys", "-t", session, "q")

        def exited() -> bool:
            return status_file.is_file() and status_file.read_text().strip() != ""

        assert wait_for(exited, 10), tmux("capture-pane", "-p", "-t", session)
        assert status_file.read_text().strip() == "0"
    finally:
        subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True)
