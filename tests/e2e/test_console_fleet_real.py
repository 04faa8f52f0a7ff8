"""Two real vLLM servers (CPU build, the tiny model) in one console, driven with Pilot.

Launch two from the model list (the second on a port of its own), chat with each from the
chat tab by selecting its row, stop one while the other keeps answering, stop the rest:
nothing of either server's session is left and both ports are free.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.widgets import Input

from tests.e2e.test_console_real import (
    CHAT_CONTEXT,
    CHAT_PROMPT,
    READY_LIMIT,
    chat_from_the_pane,
    chat_ready,
    own_cores,
    save_tiny_spec,
)
from tests.fakes.net import free_port
from tests.widgets.console_helpers import wait_until
from vllm_console.app import VllmConsoleApp
from vllm_console.config import load_settings
from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.serve.proctable import port_is_free, session_pids
from vllm_console.screens.launch import LaunchScreen
from vllm_console.widgets.fleet.table import FleetTable

pytestmark = pytest.mark.e2e


async def launch(app: VllmConsoleApp, pilot: Any, port: int) -> str:
    """Enter on the tiny model, the port set, launch; the member's name once it is ready."""
    await pilot.press("escape")
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen), 30, "the dialog")
    screen = app.screen
    go = screen.query_one("#launch-go")
    await wait_until(pilot, lambda: not go.disabled, 60, "vLLM to be found")
    screen.query_one("#field-port", Input).value = str(port)
    await pilot.pause(0.2)
    await pilot.press("ctrl+l")
    await wait_until(pilot, lambda: not isinstance(app.screen, LaunchScreen), 30, "the launch")
    name = app.fleet.selected
    assert name is not None
    pane = app.fleet.panes[name]
    await wait_until(pilot, lambda: pane.state.phase is Phase.READY, READY_LIMIT, f"{name} ready")
    return name


def answers(port: int) -> bool:
    body = {"prompt": "hello", "max_tokens": 4, "temperature": 0}
    try:
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/completions", json=body, timeout=60)
    except httpx.HTTPError:
        return False
    return reply.status_code == 200 and bool(reply.json()["choices"])


async def test_two_real_servers_in_one_console(
    real_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith(("VLLM_", "HF_"))]:
        monkeypatch.delenv(key)
    for key, value in real_env.items():
        monkeypatch.setenv(key, value)
    ports = (free_port(), free_port())
    save_tiny_spec(real_env, ports[0], max_model_len=CHAT_CONTEXT)
    cwd = Path(real_env["HOME"]).parent / "cwd"
    settings = load_settings(environ=dict(os.environ), cwd=cwd, home=Path(real_env["HOME"]))
    app = VllmConsoleApp(settings)
    sids: list[int] = []
    async with app.run_test(size=(140, 44)) as pilot:
        await wait_until(pilot, lambda: app.catalog_entries, 30, "the tiny model")
        await pilot.pause(0.5)
        first = await launch(app, pilot, ports[0])
        second = await launch(app, pilot, ports[1])
        assert first != second and app.fleet.names == (first, second)
        sids = [pid for name in (first, second) if (pid := app.fleet.panes[name].pid)]
        assert len(sids) == 2

        table = app.query_one(FleetTable)
        table.focus()
        await pilot.press("up")  # the first row: the chat follows it
        await wait_until(pilot, lambda: app.fleet.selected == first, 5, "the first row")
        with own_cores(session_pids(sids[0])):
            stats = await chat_from_the_pane(pilot, app)  # the whole chat tab, as a user
        assert app.chat.config.base_url == f"http://127.0.0.1:{ports[0]}/v1" and stats.ok

        await pilot.press("escape")
        table.focus()
        await pilot.press("down")  # the second row
        await wait_until(pilot, lambda: app.fleet.selected == second, 5, "the second row")
        chat = app.chat
        await wait_until(pilot, lambda: chat.config.base_url.endswith(f":{ports[1]}/v1"), 10)
        await wait_until(pilot, lambda: chat_ready(chat), 30, "the chat to probe the second")
        turns = len(chat.turns)
        with own_cores(session_pids(sids[1])):
            assert chat.send(CHAT_PROMPT)  # the settings of the first chat hold
            await wait_until(pilot, lambda: len(chat.turns) == turns + 2 and not chat.busy, 120)
        assert chat.turns[-1].stats is not None and chat.turns[-1].stats.ok

        await pilot.press("escape")
        await pilot.press("s")  # the selected one, the second
        pane = app.fleet.panes[second]
        await wait_until(pilot, lambda: pane.state.phase is Phase.STOPPED, 60, "second stopped")
        assert session_pids(sids[1]) == [] and port_is_free("127.0.0.1", ports[1])
        assert app.fleet.panes[first].state.phase is Phase.READY and answers(ports[0])

        await pilot.press("S")  # one runs: no question
        pane = app.fleet.panes[first]
        await wait_until(pilot, lambda: pane.state.phase is Phase.STOPPED, 60, "first stopped")
    assert all(session_pids(sid) == [] for sid in sids)
    assert port_is_free("127.0.0.1", ports[0]) and port_is_free("127.0.0.1", ports[1])
