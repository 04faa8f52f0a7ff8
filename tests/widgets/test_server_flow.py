"""The console against the stand-in vLLM: launch, phases, ready, stop, failure, fix, quit."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Input

from tests.widgets.console_helpers import fake_settings, wait_until
from vllm_console.app import VllmConsoleApp
from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.serve.process import stop_group
from vllm_console.core.serve.proctable import port_is_free, session_pids
from vllm_console.core.serve.runs import LEFT_RUNNING, RunArchive
from vllm_console.core.serve.spec import load_saved_specs
from vllm_console.screens.launch import LaunchScreen
from vllm_console.screens.quit import QuitScreen
from vllm_console.widgets.server.log_view import BufferedLog


@pytest.fixture(autouse=True)
def _fast_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VLLM_DELAY", "0.3")
    monkeypatch.delenv("FAKE_VLLM_SCENARIO", raising=False)


def make_app(tmp_path: Path, fake_catalog: Any, make_folder_entry: Any, **changes: Any) -> Any:
    settings = fake_settings(tmp_path, **changes)
    app = VllmConsoleApp(settings, catalog=fake_catalog([make_folder_entry("org/tiny-model")]))
    return app


async def open_dialog(app: VllmConsoleApp, pilot: Any, *, sampling: bool = False) -> LaunchScreen:
    """Enter on the model. `sampling`: a live GPU sampler never finishes, wait for the rows."""
    if sampling:
        await wait_until(pilot, lambda: app.panes_ready.is_set() and app.browser.entries, 10)
    else:
        await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen), 10, "the dialog")
    screen = app.screen
    assert isinstance(screen, LaunchScreen)
    await wait_until(pilot, lambda: "exec " in preview(screen), 10, "the preview")
    return screen


def preview(screen: LaunchScreen) -> str:
    return str(screen.query_one("#launch-preview").render())


async def launch_and_wait_ready(app: VllmConsoleApp, pilot: Any) -> None:
    await open_dialog(app, pilot)
    await pilot.press("ctrl+l")
    await wait_until(pilot, lambda: app.server_state.phase is Phase.READY, 20, "ready")


async def close_leftovers(app: VllmConsoleApp, pilot: Any) -> None:
    """Past the leftovers dialog: it stays up while other vLLMs of this machine (not ours,
    offered for stopping only) are listed."""
    from vllm_console.screens.leftovers import LeftoversScreen

    if isinstance(app.screen, LeftoversScreen):
        await pilot.press("escape")
    await wait_until(pilot, lambda: not isinstance(app.screen, LeftoversScreen), 5, "the close")


def log_lines(app: VllmConsoleApp) -> list[str]:
    """The selected server's log."""
    return app.server.log_view.all_lines


async def test_dialog_previews_the_command_and_flags_bad_fields(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    app = make_app(tmp_path, fake_catalog, make_folder_entry, api_key="sk-secret")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_dialog(app, pilot)
        text = preview(screen)
        assert "export HF_HUB_OFFLINE=1" in text
        assert (
            f"--port {app.settings.port}" in text and "--served-model-name org/tiny-model" in text
        )
        # the key goes to vLLM in its environment: shown redacted, never on the command line
        assert "VLLM_API_KEY=***" in text and "sk-secret" not in text
        assert "--api-key" not in text
        screen.query_one("#field-max_model_len", Input).value = "4096"
        await pilot.pause()
        assert "--max-model-len 4096" in preview(screen)  # live
        go = screen.query_one("#launch-go", Button)
        for field, bad in (
            ("port", "abc"),
            ("gpu_memory_utilization", "1.7"),
            ("extra_args", "'x"),
        ):
            widget = screen.query_one(f"#field-{field}", Input)
            good, widget.value = widget.value, bad
            await pilot.pause()
            assert go.disabled and widget.has_class("-invalid"), field
            assert field in screen.errors
            widget.value = good
            await pilot.pause()
        assert not go.disabled
        await pilot.press("ctrl+y")
        assert app.clipboard.startswith("#!/usr/bin/env bash") and "sk-secret" not in app.clipboard
        await pilot.press("escape")
        assert not isinstance(app.screen, LaunchScreen)


async def test_vllm_not_found_is_said_with_the_fix(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    missing = str(tmp_path / "no-such-vllm")
    app = make_app(tmp_path, fake_catalog, make_folder_entry, vllm_command=missing)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen), 10, "the dialog")
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        await wait_until(pilot, lambda: "cannot be run" in preview(screen), 10, "the problem")
        assert "VLLM_CONSOLE_VLLM" in preview(screen)
        assert screen.query_one("#launch-go", Button).disabled


async def test_launch_phases_ready_then_stop(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    app = make_app(tmp_path, fake_catalog, make_folder_entry)
    async with app.run_test(size=(120, 40)) as pilot:
        await launch_and_wait_ready(app, pilot)
        phases = [name for name, _ in app.server_state.phase_times]
        assert phases == [
            "starting",
            "loading weights",
            "compiling",
            "allocating KV cache",
            "warming up",
            "starting API server",
        ]
        assert "servers: 1 ready" in app.sub_title
        assert app.query_one("#side").active == "tab-server"
        await pilot.pause(0.2)
        assert any("Starting vLLM server" in line for line in log_lines(app))
        sid = app.server.pid
        assert sid is not None
        await pilot.press("s")
        await wait_until(pilot, lambda: app.server_state.phase is Phase.STOPPED, 20, "stopped")
        assert session_pids(sid) == [] and port_is_free("127.0.0.1", app.settings.port)
        assert app.server_state.note.startswith("stopped in")
        assert app.check_action("server", ("stop",)) is None  # disabled again
    (run,) = RunArchive(app.settings.runs_dir).all()
    assert run.status == "stopped" and "Starting vLLM server" in run.log_path.read_text()
    saved = load_saved_specs(app.settings.specs_file)
    assert saved[next(iter(saved))].port == app.settings.port


@pytest.mark.parametrize(
    ("scenario", "rule", "said", "field_id", "value"),
    [
        ("max_model_len", "max-model-len", "max model length 11568", "max_model_len", "11568"),
        # A GPU without bfloat16: the cause names it, and --dtype half cures it.
        ("bf16", "bf16-gpu", "dtype half (float16)", "dtype", "half"),
    ],
)
async def test_failure_shows_findings_and_relaunch_with_the_fix(
    tmp_path: Path,
    fake_catalog: Any,
    make_folder_entry: Any,
    monkeypatch: pytest.MonkeyPatch,
    scenario: str,
    rule: str,
    said: str,
    field_id: str,
    value: str,
) -> None:
    monkeypatch.setenv("FAKE_VLLM_SCENARIO", scenario)
    app = make_app(tmp_path, fake_catalog, make_folder_entry)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_dialog(app, pilot)
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: app.server_state.phase is Phase.FAILED, 20, "failure")
        assert app.server_state.findings[0].rule == rule
        findings = str(app.server.query_one("#server-findings").render())
        assert f"relaunch with {said}" in findings
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen), 10, "the dialog")
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        field = screen.query_one(f"#field-{field_id}", Input)
        assert field.value == value and field.has_class("-changed")
        flag = "--" + field_id.replace("_", "-")
        await wait_until(pilot, lambda: f"{flag} {value}" in preview(screen))
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: app.server_state.phase is Phase.READY, 20, "ready")
        await pilot.press("s")
        await wait_until(pilot, lambda: app.server_state.phase is Phase.STOPPED, 20, "stopped")


async def test_a_run_folder_that_cannot_be_made_fails_with_the_reason_shown(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    blocker = tmp_path / "state-file"
    blocker.write_text("a file where the state folder should be")
    app = make_app(tmp_path, fake_catalog, make_folder_entry, state_dir=blocker)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_dialog(app, pilot)
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: app.server_state.phase is Phase.FAILED, 10, "failure")
        note = app.server_state.note
        assert note.startswith(f"cannot record the run under {app.settings.runs_dir}")
        assert note in str(app.server.query_one("#server-status").render())
        assert app.server.pid is None and app.check_action("server", ("stop",)) is None


async def test_ignoring_sigterm_is_killed_after_the_grace(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_SCENARIO", "ignore_term")
    app = make_app(tmp_path, fake_catalog, make_folder_entry, stop_timeout=1.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await launch_and_wait_ready(app, pilot)
        sid = app.server.pid
        assert sid is not None
        await pilot.press("s")
        await wait_until(pilot, lambda: app.server_state.phase is Phase.STOPPED, 20, "stopped")
        assert "killed after the grace period" in app.server_state.note
        assert session_pids(sid) == []


async def test_a_taken_port_is_refused_naming_the_holder(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    app = make_app(tmp_path, fake_catalog, make_folder_entry)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", app.settings.port))
        holder.listen()
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_dialog(app, pilot)
            port = screen.query_one("#field-port", Input)
            # the dialog moves to the next free port; typed back, the launch refuses it
            await wait_until(pilot, lambda: port.value != str(app.settings.port), 5, "moved")
            port.value = str(app.settings.port)
            await pilot.pause()
            await pilot.press("ctrl+l")
            await wait_until(pilot, lambda: "port" in screen.errors, 10, "the refusal")
            assert f"port {app.settings.port} is taken by" in screen.errors["port"]
            assert "pid" in screen.errors["port"]
            assert isinstance(app.screen, LaunchScreen) and app.server_state.phase is None


async def test_quit_with_a_server_asks_and_cancel_keeps_it(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    app = make_app(tmp_path, fake_catalog, make_folder_entry)
    async with app.run_test(size=(120, 40)) as pilot:
        await launch_and_wait_ready(app, pilot)
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen), 5, "the question")
        await pilot.press("escape")
        await pilot.pause()
        assert app.server_state.phase is Phase.READY and app.is_running
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen), 5, "the question")
        sid = app.server.pid
        assert sid is not None
        await pilot.press("s")
        await wait_until(pilot, lambda: not app.is_running, 20, "the exit")
    assert session_pids(sid) == []


async def test_leave_running_detaches_then_leftovers_attach_and_stop(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    app = make_app(tmp_path, fake_catalog, make_folder_entry)
    async with app.run_test(size=(120, 40)) as pilot:
        await launch_and_wait_ready(app, pilot)
        sid = app.server.pid
        assert sid is not None
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen), 5, "the question")
        await pilot.press("l")
        await wait_until(pilot, lambda: not app.is_running, 10, "the exit")
    try:
        await asyncio.sleep(0.5)
        assert session_pids(sid), "the server should still run"
        (run,) = RunArchive(app.settings.runs_dir).all()
        assert run.status == LEFT_RUNNING
        again = VllmConsoleApp(
            app.settings,
            catalog=fake_catalog([make_folder_entry("org/tiny-model")]),
            check_leftovers=True,
        )
        async with again.run_test(size=(120, 40)) as pilot:
            from vllm_console.screens.leftovers import LeftoversScreen

            await wait_until(pilot, lambda: isinstance(again.screen, LeftoversScreen), 10, "notice")
            await pilot.press("a")
            await wait_until(pilot, lambda: again.server_state.phase is Phase.READY, 10, "ready")
            await close_leftovers(again, pilot)
            assert again.server_state.attached_run == run.id
            await pilot.pause(0.3)
            assert any("Starting vLLM server" in line for line in log_lines(again))
            await pilot.press("s")
            await wait_until(pilot, lambda: again.server_state.phase is Phase.STOPPED, 20, "stop")
        assert session_pids(sid) == []
        assert RunArchive(app.settings.runs_dir).all()[0].status == "stopped"
    finally:
        if session_pids(sid):
            await stop_group(sid, 1.0)


async def test_run_history_lists_runs_and_shows_a_log(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    app = make_app(tmp_path, fake_catalog, make_folder_entry)
    recorder = RunArchive(app.settings.runs_dir).new("org/old-model", ["vllm", "serve"], {}, 8000)
    recorder.write_lines(["first line", "WARNING something odd", "last line"])
    recorder.finish(status="failed", returncode=1, reason="vLLM exited with code 1")
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("h")
        from vllm_console.screens.runs import RunsScreen

        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), 5, "history")
        log = app.screen.query_one(BufferedLog)
        await wait_until(pilot, lambda: "last line" in log.all_lines, 5, "the log")
        await pilot.press("w")
        await pilot.pause(0.1)
        assert log.lines == ["WARNING something odd"]
        await pilot.press("escape")
        assert not isinstance(app.screen, RunsScreen)
    data = json.loads((recorder.info.dir / "run.json").read_text())
    assert data["status"] == "failed"


async def test_run_history_stacks_on_a_narrow_terminal(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    app = make_app(tmp_path, fake_catalog, make_folder_entry)
    archive = RunArchive(app.settings.runs_dir)
    for n in range(3):
        recorder = archive.new(f"org/model-{n}", ["vllm", "serve"], {}, 8000 + n)
        recorder.write_lines([f"the log of run {n}"])
        recorder.finish(status="stopped", returncode=0, reason="stopped by the user")
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("h")
        from vllm_console.screens.runs import RunsScreen

        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), 5, "history")
        screen = app.screen
        log = screen.query_one(BufferedLog)
        await wait_until(pilot, lambda: log.all_lines, 5, "the log")
        await pilot.pause()
        table = screen.query_one("#runs-table")
        # The log is below the table, as wide as the screen, not a sliver beside it.
        assert log.region.width >= 78 and log.region.y > table.region.y
        assert table.region.height >= 4  # the header and every run
        assert log.region.height >= 6
