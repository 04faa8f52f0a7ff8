"""Fleet files in the console: `--fleet FILE` launches and adds its servers; "Save fleet"
writes the current ones back (the stand-in vLLM plays every server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from tests.fakes.net import free_port
from tests.widgets.console_helpers import wait_until
from tests.widgets.test_server_flow import make_app
from vllm_console.app import VllmConsoleApp
from vllm_console.cli import main
from vllm_console.controllers.fleet_file import share_gpus
from vllm_console.core.fleet.file import load_fleet
from vllm_console.core.fleet.model import Member, Source
from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.serve.runs import RunArchive
from vllm_console.core.serve.spec import LaunchSpec
from vllm_console.screens.ask import FleetPathScreen
from vllm_console.widgets.chat.pane import ChatPane
from vllm_console.widgets.fleet.table import FleetTable

MODEL = "org/tiny-model"


@pytest.fixture(autouse=True)
def _fast_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VLLM_DELAY", "0.3")
    monkeypatch.delenv("FAKE_VLLM_SCENARIO", raising=False)


def local(name: str, port: int, gpus: tuple[int, ...] | None = None) -> Member:
    spec = LaunchSpec(f"/models/{name}", served_model_name=MODEL, port=port, gpus=gpus)
    return Member(name, spec=spec, source=Source("fleet.yaml", 3))


def fleet_app(tmp_path: Path, fake_catalog: Any, make_folder_entry: Any, *members: Member) -> Any:
    app = make_app(tmp_path, fake_catalog, make_folder_entry)
    return VllmConsoleApp(app.settings, catalog=fake_catalog([]), members=members)


def names(app: VllmConsoleApp) -> tuple[str, ...]:
    return app.fleet.names if app.panes_ready.is_set() else ()


def test_members_that_may_share_a_gpu_start_in_turn() -> None:
    assert share_gpus((0, 1), (1, 2)) and not share_gpus((0,), (1,))
    assert share_gpus(None, (3,)) and share_gpus((3,), None)  # inherited: any GPU


async def test_a_fleet_is_launched_and_added_at_start(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    ports = (free_port(), free_port())
    chat, embed = local("chat", ports[0]), local("embed", ports[1])
    remote = Member("team", url=f"http://127.0.0.1:{ports[0]}", source=Source("fleet.yaml", 9))
    app = fleet_app(tmp_path, fake_catalog, make_folder_entry, chat, embed, remote)
    async with app.run_test(size=(140, 44)) as pilot:
        await wait_until(pilot, lambda: len(names(app)) == 3, 20, "every member")
        assert app.fleet.names == ("team", "chat", "embed")  # remote ones first: no wait

        def phase(name: str) -> Phase | None:
            pane = app.fleet.pane(name)
            return pane.state.phase if pane is not None else None

        await wait_until(pilot, lambda: phase("chat") is phase("embed") is Phase.READY, 30)
        # no GPUs named: either may use any GPU, so the second waited for the first
        runs = RunArchive(app.settings.runs_dir).all()
        (chat_run,) = [run for run in runs if run.name == "chat"]
        (embed_run,) = [run for run in runs if run.name == "embed"]
        assert embed_run.started >= chat_run.started + 0.3  # after the first was ready
        assert chat_run.port == ports[0] and embed_run.port == ports[1]

        table = app.query_one(FleetTable)
        await wait_until(pilot, lambda: str(table.get_cell("team", "health")) == "ok", 10)
        assert str(table.get_cell("team", "phase")) == "remote"
        assert str(table.get_cell("team", "where")) == remote.url
        app.fleet.select("team")  # a remote member: the chat points at it, nothing to stop
        await pilot.pause()
        assert app.query_one(ChatPane).config.base_url == f"{remote.url}/v1"
        assert app.check_action("server", ("stop",)) is None

        await pilot.press("S")  # two run: asks first
        await pilot.press("y")
        await wait_until(pilot, lambda: phase("chat") is phase("embed") is Phase.STOPPED, 20)


async def test_save_fleet_writes_the_servers(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    ports = (free_port(), free_port())
    remote = Member("team", url="http://gpu-box:8000")
    members = (local("chat", ports[0], (0,)), local("embed", ports[1], (1,)), remote)
    app = fleet_app(tmp_path, fake_catalog, make_folder_entry, *members)
    async with app.run_test(size=(140, 44)) as pilot:
        await wait_until(pilot, lambda: len(names(app)) == 3, 20, "every member")
        await pilot.press("W")
        await wait_until(pilot, lambda: isinstance(app.screen, FleetPathScreen), 5, "dialog")
        field = app.screen.query_one("#fleet-path", Input)
        await wait_until(pilot, lambda: app.focused is field, 5, "the field")
        assert field.value == "fleet.yaml"
        await pilot.press("enter")
        saved = app.settings.cwd / "fleet.yaml"
        await wait_until(pilot, saved.exists, 10, "the file")
        await pilot.press("S")
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.servers.running(), 20, "all stopped")
    again = load_fleet(saved, app.settings).members
    assert {m.name for m in again} == {"chat", "embed", "team"}
    by_name = {m.name: m for m in again}
    chat, embed = (by_name[name].spec for name in ("chat", "embed"))
    assert chat is not None and embed is not None
    assert chat.port == ports[0] and chat.gpus == (0,)
    assert embed.gpus == (1,) and by_name["team"].url == remote.url


def test_a_bad_fleet_file_is_refused_before_the_console_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)

    def no_console(*args: object, **kwargs: object) -> None:
        raise AssertionError("the console must not start")

    monkeypatch.setattr("vllm_console.app.VllmConsoleApp", no_console)
    bad = tmp_path / "fleet.yaml"
    bad.write_text("servers:\n  chat:\n    model: x\n    no-such-key: 1\n", encoding="utf-8")
    assert main(["--fleet", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "fleet.yaml" in err and "no-such-key" in err and "Traceback" not in err
    assert main(["--fleet", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err
