"""`vllm-console web` as a user runs it, a websocket client in the browser's place and the
stand-in vLLM launched from it: one session at a time, a closed tab leaves the server
running and the next session attaches it, Ctrl-C stops what it started (or keeps it with
--keep-servers), and a SIGKILL of the web server takes the server down."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.web.browserless import (
    Browser,
    launch_from_browser,
    runs,
    session_ended,
    wait_for,
    web_env,
    web_server,
)
from tests.web.helpers import COOKIE, TOKEN
from vllm_console.core.serve.process import stop_group
from vllm_console.core.serve.proctable import session_pids
from vllm_console.core.serve.runs import LEFT_RUNNING


def gone(pid: int) -> bool:
    return session_pids(pid) == []


async def test_one_session_at_a_time(tmp_path: Path) -> None:
    env = web_env(tmp_path)
    with web_server(env) as (proc, port):
        first = Browser(port)
        await first.open()
        await first.wait_for("Org/Tiny")
        second = Browser(port)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await second.open()
        assert refused.value.status == 409
        await second.close()
        async with aiohttp.ClientSession(headers={"Cookie": f"vllm_console_web={COOKIE}"}) as s:
            async with s.get(f"http://127.0.0.1:{port}/") as page:
                assert page.status == 409
                assert "Another browser session" in await page.text()
            await first.close()  # the tab closes: the next one may come in
            for _ in range(100):
                async with s.get(f"http://127.0.0.1:{port}/") as page:
                    if page.status == 200:
                        break
                await asyncio.sleep(0.1)
            assert page.status == 200
        third = Browser(port)
        await third.open(wait=15)
        await third.wait_for("Org/Tiny")
        await third.close()
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 0


async def test_closed_tab_leaves_running_reopening_attaches_ctrl_c_stops(tmp_path: Path) -> None:
    env = web_env(tmp_path)
    pid = 0
    try:
        with web_server(env) as (proc, port):
            browser = Browser(port)
            await browser.open()
            run = await launch_from_browser(browser, env)
            pid = run.pid or 0
            await browser.wait_for("ready", 20)
            await browser.close()  # the tab closes
            await wait_for(lambda: runs(env)[0].status == LEFT_RUNNING, 10, "left running")
            assert not gone(pid)
            again = Browser(port)
            await again.open(wait=15)
            await again.wait_for(f"attached to run {run.id}", 20)  # unasked
            await again.close()
            await session_ended(port)
            assert runs(env)[0].status == LEFT_RUNNING  # left again
            os.kill(proc.pid, signal.SIGINT)  # Ctrl-C: stops what it started
            assert proc.wait(30) == 0
            assert gone(pid)
            assert proc.stdout is not None and proc.stderr is not None
            said = proc.stdout.read() + proc.stderr.read()
            assert "left by a closed tab" in said and env["VLLM_CONSOLE_WEB_TOKEN"] not in said
        archive = [f for f in (tmp_path / "state").rglob("*") if f.is_file()]
        assert archive and not any(TOKEN.encode() in f.read_bytes() for f in archive)
    finally:
        if pid and not gone(pid):
            await stop_group(pid, 1.0)


async def test_ctrl_c_with_keep_servers_leaves_the_server(tmp_path: Path) -> None:
    env = web_env(tmp_path)
    pid = 0
    try:
        with web_server(env, "--keep-servers") as (proc, port):
            browser = Browser(port)
            await browser.open()
            pid = (await launch_from_browser(browser, env)).pid or 0
            await browser.wait_for("ready", 20)
            os.kill(proc.pid, signal.SIGINT)
            assert proc.wait(30) == 0
            await browser.close()
        assert not gone(pid)
        assert runs(env)[0].status == LEFT_RUNNING
    finally:
        if pid and not gone(pid):
            await stop_group(pid, 1.0)


async def test_sigkill_of_the_web_server_takes_the_server_down(tmp_path: Path) -> None:
    env = web_env(tmp_path)
    pid = 0
    try:
        with web_server(env) as (proc, port):
            browser = Browser(port)
            await browser.open()
            pid = (await launch_from_browser(browser, env)).pid or 0
            await browser.wait_for("ready", 20)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            await wait_for(lambda: gone(pid), 20, "the server's end")
            await browser.close()
    finally:
        if pid and not gone(pid):
            await stop_group(pid, 1.0)
