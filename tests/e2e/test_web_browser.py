"""The console in a real browser: headless Chromium opens `vllm-console web` with its token,
sees the model list, opens the help and the launch dialog by keys, launches the stand-in
vLLM and stops it. Without the token it gets 403 and opens no websocket.

VLLM_CONSOLE_UPDATE_ASSETS=1 also writes the main screen's screenshot into assets/ for the
README.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.browserless import others_offered, runs, wait_for, web_env, web_server
from tests.web.chromium import Chromium, chromium_missing
from tests.web.helpers import TOKEN
from vllm_console.core.serve.process import stop_group
from vllm_console.core.serve.proctable import session_pids

pytestmark = pytest.mark.e2e
ASSETS = Path(__file__).resolve().parents[2] / "assets"


@pytest.fixture
def chromium() -> Iterator[Chromium]:
    if (missing := chromium_missing()) is not None:
        pytest.skip(missing)
    browser = Chromium(watched="Org/Tiny")
    yield browser
    browser.close()


def keep(shot: Path) -> None:
    if os.environ.get("VLLM_CONSOLE_UPDATE_ASSETS") == "1":
        shutil.copyfile(shot, ASSETS / shot.name)


async def test_the_console_in_chromium(chromium: Chromium) -> None:
    from selenium.webdriver.common.keys import Keys

    # A folder named after the project, not the test runner: its paths are in the screenshot.
    tmp_path = Path(tempfile.mkdtemp(prefix="vllm-console-"))
    env = web_env(tmp_path)
    pid = 0
    try:
        with web_server(env) as (_proc, port):
            chromium.open(f"http://127.0.0.1:{port}/")
            assert "Forbidden" in chromium.js("document.body.innerText")
            time.sleep(0.5)
            assert chromium.js("window.__sockets") == 0

            chromium.open(f"http://127.0.0.1:{port}/?token={TOKEN}")
            chromium.wait_text("Org/Tiny")
            assert TOKEN not in chromium.driver.current_url  # the cookie took over
            assert chromium.js("window.__sockets") == 1
            if others_offered(env):  # other vLLMs of this machine, offered for stopping
                chromium.wait_text("Servers left from earlier runs")
                chromium.press(Keys.ESCAPE)
                time.sleep(0.5)  # an escape and a key together read as alt+key
                chromium.press(Keys.ESCAPE)  # and the focus back on the model table
                time.sleep(0.5)
            chromium.screenshot(tmp_path / "screenshot-web.png")

            mark = len(chromium.text)
            chromium.press("?")
            chromium.wait_text("vLLM console: keys", after=mark)
            chromium.press(Keys.ESCAPE)
            time.sleep(0.5)  # an escape and a key together read as alt+key

            mark = len(chromium.text)
            chromium.press(Keys.ENTER)
            chromium.wait_text("exec ", after=mark)  # the launch dialog's command preview
            time.sleep(0.5)
            chromium.screenshot(tmp_path / "screenshot-web-launch.png")
            chromium.press_ctrl("l")
            await wait_for(lambda: any(run.pid for run in runs(env)), 20, "the launch")
            pid = runs(env)[0].pid or 0
            chromium.wait_text("ready", 30, after=mark)
            chromium.press("s")  # stop the selected server
            await wait_for(lambda: runs(env)[0].status == "stopped", 30, "the stop")
            assert session_pids(pid) == []
        keep(tmp_path / "screenshot-web.png")  # the launch dialog shows this machine's paths
    finally:
        if pid and session_pids(pid):
            await stop_group(pid, 1.0)
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_the_first_paint_bench_runs() -> None:
    """bench/bench_web_first_paint.py, once, so that it cannot rot."""
    if (missing := chromium_missing()) is not None:
        pytest.skip(missing)
    bench = ASSETS.parent / "bench" / "bench_web_first_paint.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--runs", "1", "--models", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "browser: navigation start to the model list drawn" in done.stdout
