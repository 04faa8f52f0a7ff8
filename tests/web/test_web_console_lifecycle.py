"""The console behind a browser tab: a closed tab leaves the servers running (and says which
to the web server), the next session attaches them unasked, the web server's stop stops them."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.widgets.console_helpers import fake_settings, wait_until
from tests.widgets.test_fleet import launch_on, phase
from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.serve.process import stop_group
from vllm_console.core.serve.proctable import session_pids
from vllm_console.core.serve.runs import LEFT_RUNNING, RunArchive
from vllm_console.web.console import WebConsoleApp


@pytest.fixture(autouse=True)
def _fast_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VLLM_DELAY", "0.3")
    monkeypatch.delenv("FAKE_VLLM_SCENARIO", raising=False)


async def test_a_closed_tab_leaves_running_and_the_next_session_attaches(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    settings = fake_settings(tmp_path)
    left = tmp_path / "left-running"
    entries = [make_folder_entry("org/tiny-model")]
    app = WebConsoleApp(settings, left_file=left, catalog=fake_catalog(entries))
    sids: list[int] = []
    try:
        async with app.run_test(size=(140, 44)) as pilot:
            name = await launch_on(app, pilot, settings.port)
            await wait_until(pilot, lambda: phase(app, name) is Phase.READY, 20, "ready")
            sids = [pid for pane in app.fleet.panes.values() if (pid := pane.pid) is not None]
            app.post_message(app_exit())  # what the web driver posts when the tab closes
            await wait_until(pilot, lambda: not app.is_running, 10, "the exit")
        await asyncio.sleep(0.3)
        assert sids and all(session_pids(sid) for sid in sids), "it should still run"
        runs = RunArchive(settings.runs_dir).all()
        assert [(run.name, run.status) for run in runs] == [(name, LEFT_RUNNING)]
        assert left.read_text().split() == [runs[0].id]

        again = WebConsoleApp(settings, left_file=left, catalog=fake_catalog(entries))
        async with again.run_test(size=(140, 44)) as pilot:
            await wait_until(pilot, again.panes_ready.is_set, 10, "the panes")
            await wait_until(pilot, lambda: name in again.fleet.names, 10, "attached unasked")
            await wait_until(pilot, lambda: phase(again, name) is Phase.READY, 10, "ready")
            os.kill(os.getpid(), signal.SIGTERM)  # the web server stopping: as quit's "stop"
            await wait_until(pilot, lambda: not again.is_running, 20, "the exit")
        assert all(session_pids(sid) == [] for sid in sids)
    finally:
        for sid in sids:
            if session_pids(sid):
                await stop_group(sid, 1.0)


async def test_sigterm_with_keep_servers_leaves_them_running(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    settings = fake_settings(tmp_path)
    entries = [make_folder_entry("org/tiny-model")]
    app = WebConsoleApp(settings, keep_servers=True, catalog=fake_catalog(entries))
    sids: list[int] = []
    try:
        async with app.run_test(size=(140, 44)) as pilot:
            name = await launch_on(app, pilot, settings.port)
            await wait_until(pilot, lambda: phase(app, name) is Phase.READY, 20, "ready")
            sids = [pid for pane in app.fleet.panes.values() if (pid := pane.pid) is not None]
            os.kill(os.getpid(), signal.SIGTERM)
            await wait_until(pilot, lambda: not app.is_running, 10, "the exit")
        await asyncio.sleep(0.3)
        assert sids and all(session_pids(sid) for sid in sids)
        assert [run.status for run in RunArchive(settings.runs_dir).all()] == [LEFT_RUNNING]
    finally:
        for sid in sids:
            if session_pids(sid):
                await stop_group(sid, 1.0)


def app_exit() -> Any:
    from textual import messages

    return messages.ExitApp()
