"""Remote members in the console: the settings' endpoint as a row at start, an endpoint
typed in the console, and one that stops answering marked down, never removed."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from textual.widgets import Input

from tests.widgets.console_helpers import wait_until
from tests.widgets.test_remote_pane import StandIn, stand_in  # noqa: F401  (the fixture)
from tests.widgets.test_server_flow import make_app
from vllm_console.app import VllmConsoleApp
from vllm_console.screens.add_endpoint import AddEndpointScreen
from vllm_console.widgets.chat.pane import ChatPane
from vllm_console.widgets.fleet.remote import RemotePane


def console(tmp_path: Path, fake_catalog: Any, make_folder_entry: Any, **settings: Any) -> Any:
    app = make_app(tmp_path, fake_catalog, make_folder_entry)
    changed = dataclasses.replace(app.settings, **settings)
    return VllmConsoleApp(changed, catalog=fake_catalog([]))


def remote_pane(app: VllmConsoleApp, name: str) -> RemotePane | None:
    return next((p for p in app.query(RemotePane) if p.member.name == name), None)


async def test_the_settings_endpoint_is_a_member(
    tmp_path: Path,
    fake_catalog: Any,
    make_folder_entry: Any,
    stand_in: StandIn,  # noqa: F811
) -> None:
    stand_in.start()
    base = f"{stand_in.url}/v1"
    app = console(
        tmp_path,
        fake_catalog,
        make_folder_entry,
        base_url=base,
        origins={"VLLM_BASE_URL": ".env line 1"},
    )
    name = f"127.0.0.1-{stand_in.port}"
    async with app.run_test(size=(140, 44)) as pilot:
        await app.panes_ready.wait()
        await wait_until(pilot, lambda: name in app.fleet.names, 10, "the row")
        assert app.fleet.remotes[name].url == stand_in.url
        assert str(app.fleet.remotes[name].source) == "VLLM_BASE_URL"
        await wait_until(pilot, lambda: app.fleet.row(name).model == "tiny", 10, "its model")
        pane = remote_pane(app, name)
        assert pane is not None
        await wait_until(pilot, lambda: pane.state is not None and pane.state.healthy, 10)
        stand_in.kill()  # stops answering: marked down, kept
        await wait_until(pilot, lambda: pane.state is not None and not pane.state.healthy, 15)
        assert name in app.fleet.names


async def test_an_endpoint_typed_in_the_console_joins_and_the_chat_follows(
    tmp_path: Path,
    fake_catalog: Any,
    make_folder_entry: Any,
    stand_in: StandIn,  # noqa: F811
) -> None:
    stand_in.start()
    app = console(tmp_path, fake_catalog, make_folder_entry)
    async with app.run_test(size=(140, 44)) as pilot:
        await app.panes_ready.wait()
        assert app.fleet.names == ()  # the default endpoint is not a member
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, AddEndpointScreen), 5, "dialog")
        app.screen.query_one("#endpoint-url", Input).value = stand_in.url
        app.screen.query_one("#endpoint-name", Input).value = "team"
        await pilot.press("enter")
        await wait_until(pilot, lambda: "team" in app.fleet.names, 10, "the member")
        assert app.fleet.selected == "team"
        chat = app.query_one(ChatPane)
        await wait_until(pilot, lambda: chat.config.base_url == f"{stand_in.url}/v1", 10)
        assert chat.config.source == "remote server"
        assert app.servers.allows("stop") is None  # nothing of ours to stop
