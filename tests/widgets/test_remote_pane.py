"""A remote member's pane and the add-endpoint dialog, in small host apps (Pilot).

The member is the stand-in `vllm serve` (tests/fakes/fake_vllm.py) as a real child process:
killed, the pane marks it down and stays; started again on the same port, it is up again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.app import App, ComposeResult
from textual.widgets import Input, Static

from tests.fakes.hostile_http import HostileServer, Reply, response
from tests.fakes.net import free_port
from vllm_console.core.fleet.model import Member, Source
from vllm_console.core.serve.spec import LaunchSpec
from vllm_console.screens.add_endpoint import AddEndpointScreen, read_endpoint
from vllm_console.widgets.fleet.remote import RemotePane, RemoteState

FAKE_VLLM = Path(__file__).resolve().parents[1] / "fakes" / "fake_vllm.py"
INTERVAL = 0.2
UNKNOWN = "\N{EN DASH}"


class StandIn:
    """The stand-in vLLM on a fixed port, started and killed at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "FAKE_VLLM_DELAY": "0.1", "FAKE_VLLM_SCENARIO": "ok"}
        argv = [sys.executable, str(FAKE_VLLM), "serve", "Org/Tiny", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--served-model-name", "tiny"]
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the stand-in vLLM did not become ready")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    try:
        yield server
    finally:
        server.kill()


class Host(App[None]):
    def __init__(self, pane: RemotePane) -> None:
        super().__init__()
        self.pane = pane
        self.states: list[tuple[str, RemoteState]] = []

    def compose(self) -> ComposeResult:
        yield self.pane

    def on_remote_pane_state_changed(self, event: RemotePane.StateChanged) -> None:
        self.states.append((event.name, event.state))


async def wait_for(pilot: Any, check: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        await pilot.pause(0.02)


def shown(pane: RemotePane, name: str) -> str:
    return str(pane.query_one(f"#remote-{name}", Static).render())


def remote(url: str, name: str = "gpu-box", key: str | None = None) -> Member:
    return Member(name, url=url, api_key=key, source=Source("console"))


async def test_up_then_down_but_kept_then_up_again(stand_in: StandIn) -> None:
    stand_in.start()
    pane = RemotePane(remote(stand_in.url + "/v1"), interval=INTERVAL, timeout=0.5)
    app = Host(pane)
    async with app.run_test(size=(100, 20)) as pilot:
        await wait_for(pilot, lambda: pane.state and pane.state.stats)
        first = pane.state
        assert first is not None and first.healthy and first.models == ("tiny",)
        assert shown(pane, "health").startswith("● up since ")
        assert "vLLM 0.32.0" in shown(pane, "version") and "tiny" in shown(pane, "models")
        assert "running" in shown(pane, "stats") and "tokens/s" in shown(pane, "stats")
        assert shown(pane, "title").startswith("gpu-box  http://127.0.0.1:")
        assert not pane.query_one("#remote-error").display

        stand_in.kill()
        await wait_for(pilot, lambda: pane.state and not pane.state.healthy)
        await pilot.pause()
        health = shown(pane, "health")
        assert health.startswith("○ down since ") and ", last answer " in health
        assert "tiny" in shown(pane, "models")  # what it served, as last seen
        assert UNKNOWN in shown(pane, "stats")
        error = shown(pane, "error")
        assert "cannot connect (connection refused)" in error and "Last error (" in error
        rounds = pane.rounds
        await wait_for(pilot, lambda: pane.rounds >= rounds + 3)  # still polling
        assert app.query(RemotePane) and pane.is_mounted  # marked, never removed
        # each round's state reaches the host (a newer round may be on its way meanwhile)
        await wait_for(pilot, lambda: app.states[-1] == ("gpu-box", pane.state))

        stand_in.start()
        await wait_for(pilot, lambda: pane.state and pane.state.healthy)
        await pilot.pause()
        assert shown(pane, "health").startswith("● up since ")
        assert pane.state is not None and pane.state.since > first.since
        assert "cannot connect" in shown(pane, "error")  # the last error stays readable
    assert not app._notifications  # no worker failed


async def test_a_server_that_never_answered_is_down_with_the_reason() -> None:
    pane = RemotePane(remote(f"http://127.0.0.1:{free_port()}"), interval=INTERVAL)
    app = Host(pane)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.states)
        await pilot.pause()
        assert shown(pane, "health").endswith(", no answer yet")
        assert shown(pane, "version").endswith(UNKNOWN) and shown(pane, "models").endswith(UNKNOWN)


async def test_what_a_hostile_server_says_is_shown_escaped() -> None:
    evil = "\x1b[2J\x1b]0;pwned\x07\u202eevil"
    body = json.dumps({"data": [{"id": evil}]})
    replies = {
        "/health": Reply(response(b"")),
        "/version": Reply(response('{"version": "0.1\\u001b[31m"}')),
        "/v1/models": Reply(response(body)),
    }
    with HostileServer() as server:
        server.answer(replies)
        pane = RemotePane(remote(server.url, key="sesame"), interval=INTERVAL)
        app = Host(pane)
        async with app.run_test(size=(120, 20)) as pilot:
            await wait_for(pilot, lambda: pane.state and pane.state.healthy)
            await pilot.pause()
            assert pane.state is not None and pane.state.models == (evil,)  # the true id
            assert "\\x1b[2J\\x1b]0;pwned\\x07\\u202eevil" in shown(pane, "models")
            assert "vLLM 0.1\\x1b[31m" in shown(pane, "version")
            assert "API key set" in shown(pane, "title") and "sesame" not in shown(pane, "title")
            for name in ("models", "version", "health", "title"):
                assert "\x1b" not in shown(pane, name)


def test_a_local_member_has_no_remote_pane(tmp_path: Path) -> None:
    local = Member("local", spec=LaunchSpec(model=str(tmp_path)))
    with pytest.raises(ValueError, match="local member"):
        RemotePane(local)


# --- the add-endpoint dialog --------------------------------------------------------------


def test_read_endpoint_names_and_checks() -> None:
    taken = {"gpu-box-8000"}
    member, errors = read_endpoint(" http://gpu-box:8000/v1 ", " k1 ", "", taken)
    assert errors == {} and member is not None
    assert (member.name, member.url, member.api_key) == (
        "gpu-box-8000-2",
        "http://gpu-box:8000",
        "k1",
    )
    assert not member.local and str(member.source) == "console"
    member, _ = read_endpoint("https://gpu-box.lan", "", "", taken)
    assert member is not None and member.name == "gpu-box.lan" and member.api_key is None
    _, errors = read_endpoint("gpu-box:8000", "a key", "my server", taken)
    assert set(errors) == {"url", "key", "name"}
    assert errors["url"].startswith("start with http:// or https://")
    _, errors = read_endpoint("http://x:1", "", "gpu-box-8000", taken)
    assert errors == {"name": "gpu-box-8000 is taken: gpu-box-8000-2 is free"}


class DialogHost(App[None]):
    def __init__(self, taken: set[str]) -> None:
        super().__init__()
        self.taken = taken
        self.results: list[Member | None] = []

    def on_mount(self) -> None:
        self.push_screen(AddEndpointScreen(self.taken), self.results.append)


async def test_the_dialog_shows_errors_at_the_field_and_returns_a_member() -> None:
    app = DialogHost({"gpu-box-8000"})
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, AddEndpointScreen)
        await pilot.press(*"gpu-box:8000")
        error = screen.query_one("#endpoint-url-error", Static)
        assert error.display and "start with http://" in str(error.render())
        assert screen.query_one("#endpoint-url", Input).has_class("-invalid")
        await pilot.press("enter")  # refused: the dialog stays
        assert app.screen is screen and app.results == []

        screen.query_one("#endpoint-url", Input).value = "http://gpu-box:8000"
        await pilot.pause()
        assert not error.display
        name = screen.query_one("#endpoint-name", Input)
        assert name.placeholder == "gpu-box-8000-2"  # the default, made unique
        screen.query_one("#endpoint-key", Input).value = "sesame"
        assert screen.query_one("#endpoint-key", Input).password
        await pilot.click("#endpoint-add")
        await pilot.pause()
    member = app.results[0]
    assert member is not None and member.url == "http://gpu-box:8000"
    assert (member.name, member.api_key) == ("gpu-box-8000-2", "sesame")


async def test_the_dialog_cancels_and_refuses_an_empty_url() -> None:
    app = DialogHost(set())
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        error = screen.query_one("#endpoint-url-error", Static)
        assert not error.display  # nothing typed yet: no error
        await pilot.press("ctrl+s")
        assert error.display and "type the server's address" in str(error.render())
        await pilot.press("escape")
        await pilot.pause()
    assert app.results == [None]
