"""The console holds a fleet: several servers of the stand-in vLLM at once, a row each."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.widgets import ContentSwitcher, DataTable, Input

from tests.fakes.net import free_port
from tests.widgets.console_helpers import wait_until
from tests.widgets.test_server_flow import close_leftovers, make_app, open_dialog
from vllm_console.app import VllmConsoleApp
from vllm_console.core.fleet.model import FleetContext
from vllm_console.core.gpu.samples import GpuProcess, GpuSample, GpuSnapshot, GpuState
from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.serve.process import stop_group
from vllm_console.core.serve.proctable import port_is_free, session_pids
from vllm_console.core.serve.runs import LEFT_RUNNING, RunArchive
from vllm_console.screens.ask import ConfirmScreen
from vllm_console.screens.quit import QuitScreen
from vllm_console.widgets.chat.pane import ChatPane
from vllm_console.widgets.fleet.table import FleetTable


@pytest.fixture(autouse=True)
def _fast_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VLLM_DELAY", "0.3")
    monkeypatch.delenv("FAKE_VLLM_SCENARIO", raising=False)


async def launch_on(app: VllmConsoleApp, pilot: Any, port: int) -> str:
    """Enter on the model, the port set in the dialog, launch; the member launched."""
    await wait_until(pilot, app.panes_ready.is_set, 10, "the panes")
    await pilot.press("escape")  # back to the model table, from wherever the focus is
    screen = await open_dialog(app, pilot, sampling=True)  # the /metrics poll never ends
    screen.query_one("#field-port", Input).value = str(port)
    await pilot.pause()
    await pilot.press("ctrl+l")

    def launched() -> str | None:
        for name, pane in app.fleet.panes.items():
            request = pane.state.request
            if pane.state.running and request is not None and request.spec.port == port:
                return name
        return None

    await wait_until(pilot, launched, 10, "the launch")
    name = launched()
    assert name is not None
    return name


def phase(app: VllmConsoleApp, name: str) -> Phase | None:
    pane = app.fleet.pane(name)
    assert pane is not None
    return pane.state.phase


def cell(app: VllmConsoleApp, name: str, column: str) -> str:
    return str(app.query_one(FleetTable).get_cell(name, column))


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def launch_two(app: VllmConsoleApp, pilot: Any) -> tuple[str, str, int, int]:
    first_port, second_port = app.settings.port, free_port()
    first = await launch_on(app, pilot, first_port)
    await wait_until(pilot, lambda: phase(app, first) is Phase.READY, 20, "the first ready")
    second = await launch_on(app, pilot, second_port)
    await wait_until(pilot, lambda: phase(app, second) is Phase.READY, 20, "the second ready")
    return first, second, first_port, second_port


async def test_two_servers_two_rows_selection_and_stops(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    app = make_app(tmp_path, fake_catalog, make_folder_entry)
    async with app.run_test(size=(140, 44)) as pilot:
        first, second, first_port, second_port = await launch_two(app, pilot)
        assert (first, second) == ("tiny-model", "tiny-model-2")  # unique names
        assert app.fleet.names == (first, second)
        assert cell(app, first, "port") == str(first_port)
        assert cell(app, second, "port") == str(second_port)
        assert cell(app, first, "gpus") == "inherited"
        assert cell(app, second, "where") == f"pid {app.fleet.panes[second].pid}"
        await wait_until(pilot, lambda: "servers: 2 ready" in app.sub_title, 5, "the header")
        # the last launched is selected: its log shown, the chat pointed at it
        chat = app.query_one(ChatPane)
        switcher = app.query_one("#fleet-panes", ContentSwitcher)
        assert app.fleet.selected == second and switcher.current == app.server.id
        assert chat.config.base_url == f"http://127.0.0.1:{second_port}/v1"
        # /metrics is read for each ready member: load and health fill in
        await wait_until(
            pilot,
            lambda: cell(app, first, "health") == cell(app, second, "health") == "ok",
            10,
            "health",
        )
        assert cell(app, first, "requests") == "0/0" and cell(app, first, "kv") == "0 %"

        table = app.query_one(FleetTable)
        table.focus()
        await pilot.press("up")  # the cursor to the first row: it is selected
        await wait_until(pilot, lambda: app.fleet.selected == first, 5, "the selection")
        assert switcher.current == app.fleet.panes[first].id and app.server.server_name == first
        assert chat.config.base_url == f"http://127.0.0.1:{first_port}/v1"
        assert any("Starting vLLM server" in line for line in app.server.log_view.all_lines)

        first_sid = app.fleet.panes[first].pid
        await pilot.press("s")  # stops the selected one only
        await wait_until(pilot, lambda: phase(app, first) is Phase.STOPPED, 20, "first stopped")
        assert first_sid is not None and session_pids(first_sid) == []
        assert port_is_free("127.0.0.1", first_port)
        assert phase(app, second) is Phase.READY and healthy(second_port)
        assert cell(app, first, "health") == "—" and cell(app, second, "health") == "ok"
        await wait_until(pilot, lambda: "servers: 1 ready, 1 stopped" in app.sub_title, 5)

        # launching the first's model again reuses its name and pane (it is not running)
        again = await launch_on(app, pilot, first_port)
        assert again == first and app.fleet.names == (first, second)
        await wait_until(pilot, lambda: phase(app, first) is Phase.READY, 20, "ready again")
        await pilot.press("S")  # two run: asks first
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the question")
        await pilot.press("y")
        await wait_until(
            pilot,
            lambda: phase(app, first) is Phase.STOPPED and phase(app, second) is Phase.STOPPED,
            20,
            "all stopped",
        )
        assert port_is_free("127.0.0.1", first_port) and port_is_free("127.0.0.1", second_port)
        assert app.check_action("server", ("stop_all",)) is False  # hidden: none runs


async def test_the_strip_and_the_launch_dialog_learn_each_member_s_processes(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    GiB = 1 << 30
    app = make_app(tmp_path, fake_catalog, make_folder_entry)
    async with app.run_test(size=(140, 44)) as pilot:
        first, second, first_port, second_port = await launch_two(app, pilot)
        roots = {name: app.fleet.panes[name].pid for name in (first, second)}
        processes = app.servers.processes

        def read() -> bool:  # a read made before a server's engine and worker started is stale
            owners = processes.owners
            return all(
                root is not None and {root, *session_pids(root)} <= owners.get(name, frozenset())
                for name, root in roots.items()
            )

        await wait_until(pilot, read, 10, "each member's processes")
        assert set(processes.owners) == {first, second}
        assert not processes.owners[first] & processes.owners[second]
        assert app.gauges.owners == processes.owners  # each member's share, by name

        def on_gpu(index: int, *held: tuple[int, int]) -> GpuSample:
            procs = tuple(GpuProcess(pid, used) for pid, used in held)
            return GpuSample(index, memory_total=80 * GiB, processes=procs, processes_known=True)

        other = 999_999  # not ours: its memory is no member's
        assert roots[first] is not None and roots[second] is not None
        app.gauges.snapshot = GpuSnapshot(
            0.0,
            GpuState.OK,
            "",
            devices=(
                on_gpu(0, (roots[first], 20 * GiB), (other, 5 * GiB)),
                on_gpu(1, (roots[second], 7 * GiB)),
            ),
        )
        assert processes.fleet_context() == FleetContext(
            names=frozenset({first, second}),
            ports=frozenset({first_port, second_port}),
            held={0: 20 * GiB, 1: 7 * GiB},
        )
        app.fleet.select(first)
        await pilot.press("s")
        await wait_until(pilot, lambda: first not in processes.owners, 20, "forgotten")
        assert processes.fleet_context().names == {second}
        assert processes.fleet_context().ports == {second_port}
        await pilot.press("S")  # one runs: no question
        await wait_until(pilot, lambda: not processes.owners, 20, "all forgotten")
        assert not app.gauges.owners


async def test_relaunch_the_selected_with_its_last_request(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    app = make_app(tmp_path, fake_catalog, make_folder_entry)
    async with app.run_test(size=(140, 44)) as pilot:
        name = await launch_on(app, pilot, app.settings.port)
        await wait_until(pilot, lambda: phase(app, name) is Phase.READY, 20, "ready")
        sid = app.server.pid
        await pilot.press("R")  # running: stopped, then launched again in the same pane
        await wait_until(
            pilot,
            lambda: phase(app, name) is Phase.READY and app.server.pid not in (None, sid),
            30,
            "the relaunch",
        )
        assert app.fleet.names == (name,)
        assert sid is not None and session_pids(sid) == []
        runs = RunArchive(app.settings.runs_dir).all()
        assert [run.name for run in runs] == [name, name]
        await pilot.press("s")
        await wait_until(pilot, lambda: phase(app, name) is Phase.STOPPED, 20, "stopped")


async def test_quit_leaves_two_running_and_the_next_console_attaches_both(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    app = make_app(tmp_path, fake_catalog, make_folder_entry)
    sids: list[int] = []
    try:
        async with app.run_test(size=(140, 44)) as pilot:
            first, second, first_port, second_port = await launch_two(app, pilot)
            sids = [pid for pane in app.fleet.panes.values() if (pid := pane.pid) is not None]
            await pilot.press("q")
            await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen), 5, "question")
            title = str(app.screen.query_one("#quit-title").render())
            assert "2 servers are running" in title and first in title and second in title
            await pilot.press("l")
            await wait_until(pilot, lambda: not app.is_running, 10, "the exit")
        await asyncio.sleep(0.5)
        assert all(session_pids(sid) for sid in sids), "both should still run"
        runs = RunArchive(app.settings.runs_dir).all()
        assert {(run.name, run.status) for run in runs} == {
            (first, LEFT_RUNNING),
            (second, LEFT_RUNNING),
        }
        again = VllmConsoleApp(
            app.settings,
            catalog=fake_catalog([make_folder_entry("org/tiny-model")]),
            check_leftovers=True,
        )
        async with again.run_test(size=(140, 44)) as pilot:
            from vllm_console.screens.leftovers import LeftoversScreen

            await wait_until(
                pilot,
                lambda: (
                    isinstance(again.screen, LeftoversScreen)
                    and any(t.row_count for t in again.screen.query(DataTable))
                ),
                10,
                "the list",
            )
            table = again.screen.query_one(DataTable)
            what = [str(table.get_row_at(i)[2]) for i in range(table.row_count)]
            # (other vLLMs of this machine are listed too, for stopping only)
            assert sum("· run " in line for line in what) == 2, what
            await pilot.press("A")  # attach to all
            await wait_until(pilot, lambda: len(again.fleet.names) == 2, 10, "both attached")
            await close_leftovers(again, pilot)
            assert set(again.fleet.names) == {first, second}  # under their recorded names
            await wait_until(
                pilot,
                lambda: all(p.state.phase is Phase.READY for p in again.fleet.panes.values()),
                10,
                "both ready",
            )
            assert cell(again, first, "port") == str(first_port)
            assert cell(again, second, "port") == str(second_port)
            # Save fleet writes them as launched: their run records keep the settings
            saved, left = again.servers.files.members()
            assert left == [] and {m.name for m in saved} == {first, second}
            ports = {m.name: m.spec.port for m in saved if m.spec is not None}
            assert ports == {first: first_port, second: second_port}
            await pilot.press("S")
            await wait_until(pilot, lambda: isinstance(again.screen, ConfirmScreen), 5, "ask")
            await pilot.press("y")
            await wait_until(
                pilot,
                lambda: all(p.state.phase is Phase.STOPPED for p in again.fleet.panes.values()),
                20,
                "both stopped",
            )
        assert all(session_pids(sid) == [] for sid in sids)
    finally:
        for sid in sids:
            if session_pids(sid):
                await stop_group(sid, 1.0)
