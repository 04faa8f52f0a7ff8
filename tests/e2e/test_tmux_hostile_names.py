"""The console in a real terminal (tmux) with model folders named to attack it.

One folder's name sets the window title (OSC 0), another clears the screen (ED 2), two more
are Rich markup. The names must show escaped and literal; the pane's title and the rest of
the screen must be untouched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_tmux_empty_home import CONSOLE, SOCKET, tmux, wait_for
from tests.fakes.hostile_names import SHOWN, write_hostile_models

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


def test_hostile_folder_names_show_escaped_and_leave_the_terminal_alone(tmp_path: Path) -> None:
    home, cwd, models = tmp_path / "home", tmp_path / "cwd", tmp_path / "models"
    for folder in (home, cwd):
        folder.mkdir()
    write_hostile_models(models)
    session = "hostile"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "VLLM_", "TMUX"))
    }
    env.update(HOME=str(home), TERM="xterm-256color", VLLM_CONSOLE_MODEL_DIRS=str(models))
    tmux("-f", "/dev/null", "new-session", "-d", "-s", session, "-x", "160", "-y", "40",
         "-c", str(cwd), str(CONSOLE), env=env)  # fmt: skip
    try:
        title_before = tmux("display", "-p", "-t", session, "#{pane_title}")
        screen = ""

        def lists_them() -> bool:
            nonlocal screen
            screen = tmux("capture-pane", "-p", "-t", session)
            return all(name in screen for name in SHOWN)

        assert wait_for(lists_them, 20), screen
        # Let a few more frames reach the terminal: the details pane, the header's count.
        assert wait_for(lambda: "4 models" in tmux("capture-pane", "-p", "-t", session), 10)
        screen = tmux("capture-pane", "-p", "-t", session)
        assert "pwned" not in tmux("display", "-p", "-t", session, "#{pane_title}")
        assert tmux("display", "-p", "-t", session, "#{pane_title}") == title_before
        # A clear would leave the screen blank until the next full repaint; the frame is whole.
        lines = screen.splitlines()
        assert "vLLM console" in lines[0] and "4 models" in lines[0]
        assert any("Model" in line and "Params" in line for line in lines)
        assert all(name in screen for name in SHOWN)
        raw = tmux("capture-pane", "-p", "-e", "-t", session)
        assert "\x07" not in raw and "\x1b]" not in raw and "\x1b[2J" not in raw
        tmux("send-keys", "-t", session, "q")
    finally:
        subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True)
