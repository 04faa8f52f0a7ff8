"""`vllm-console web` as a child process, and a websocket client that plays the browser:
it types keys and reads what the console draws (text between the escape sequences)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from tests.conftest import write_model_folder
from tests.fakes.net import free_port
from tests.web.helpers import COOKIE, TOKEN, console_env
from vllm_console.config import Settings
from vllm_console.core.serve.leftovers import find_leftovers
from vllm_console.core.serve.runs import RunArchive, RunInfo
from vllm_console.web.access import COOKIE_NAME

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_vllm.py"
ESCAPES = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def web_env(tmp_path: Path) -> dict[str, str]:
    """A console whose vLLM is the stand-in, a model in its folders, runs in tmp_path."""
    write_model_folder(tmp_path / "models" / "Org--Tiny")
    return {
        **console_env(tmp_path),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "VLLM_CONSOLE_MODEL_DIRS": str(tmp_path / "models"),
        "VLLM_CONSOLE_VLLM": f"{sys.executable} {FAKE}",
        "VLLM_CONSOLE_PORT": str(free_port()),
        "VLLM_CONSOLE_STOP_TIMEOUT": "3",
        "FAKE_VLLM_DELAY": "0.3",
        "VLLM_CONSOLE_WEB_TOKEN": TOKEN,
    }


def env_settings(env: dict[str, str]) -> Settings:
    state = Path(env["XDG_STATE_HOME"]) / "vllm-console"
    return Settings(home=Path(env["HOME"]), state_dir=state, port=int(env["VLLM_CONSOLE_PORT"]))


def runs(env: dict[str, str]) -> list[RunInfo]:
    return RunArchive(env_settings(env).runs_dir).all()


def others_offered(env: dict[str, str]) -> bool:
    """Whether the console will first offer other vLLMs of this machine (not ours) for
    stopping, in a dialog: the same look, from here."""
    return bool(find_leftovers(env_settings(env)))


@contextmanager
def web_server(env: dict[str, str], *args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`vllm-console web` on a free port, until its address is printed; killed at the end."""
    port = free_port()
    command = [sys.executable, "-m", "vllm_console", "web", "--port", str(port), *args]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f":{port}/?token={TOKEN}" in first, first
        yield proc, port
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


class Browser:
    """One websocket session, as textual-serve's page opens it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.text = ""
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self, *, wait: float = 0.0) -> None:
        """Connect; `wait`: seconds to keep trying while another session ends (409), as
        the page a second browser gets does."""
        self._session = aiohttp.ClientSession(headers={"Cookie": f"{COOKIE_NAME}={COOKIE}"})
        url = f"http://127.0.0.1:{self.port}/ws?width=140&height=44"
        deadline = time.monotonic() + wait
        while True:
            try:
                self._ws = await self._session.ws_connect(url)
                break
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status != 409 or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        decoder = __import__("codecs").getincrementaldecoder("utf-8")("replace")
        async for message in self._ws:
            if message.type is aiohttp.WSMsgType.BINARY:
                self.text += ESCAPES.sub("", decoder.decode(message.data))

    async def wait_for(self, needle: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} never drawn; last: {self.text[-400:]!r}")
            await asyncio.sleep(0.05)

    async def press(self, keys: str) -> None:
        assert self._ws is not None
        await self._ws.send_json(["stdin", keys])

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader
        if self._session is not None:
            await self._session.close()


async def session_ended(port: int, timeout: float = 20.0) -> None:
    """Until no browser session holds the console: the page answers 200, not 409."""
    headers = {"Cookie": f"{COOKIE_NAME}={COOKIE}"}
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            async with session.get(f"http://127.0.0.1:{port}/") as page:
                if page.status == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError("the browser session never ended")
            await asyncio.sleep(0.1)


async def wait_for(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def launch_from_browser(browser: Browser, env: dict[str, str]) -> RunInfo:
    """Enter on the model, launch from the dialog (ctrl+l); the run, once it is recorded."""
    await browser.wait_for("Org/Tiny")
    if others_offered(env):
        await browser.wait_for("Servers left from earlier runs")
    for _ in range(3):
        await browser.press("\x1b")  # the dialog closed, the focus back on the model table
        await asyncio.sleep(0.5)  # an escape and a key together read as alt+key
        await browser.press("\r")
        with contextlib.suppress(AssertionError):
            await browser.wait_for("exec ", 3.0)
            break
    await browser.wait_for("exec ", 0.1)
    await browser.press("\x0c")  # ctrl+l
    await wait_for(lambda: any(run.pid for run in runs(env)), 20, "the run")
    run = runs(env)[0]
    assert run.pid is not None
    return run
