"""The chat and metrics tabs in the console, and the GPU strip: keys, wiring to the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, TabbedContent

from tests.fakes.fake_vllm import REPLY
from tests.widgets.console_helpers import wait_until
from tests.widgets.test_server_flow import launch_and_wait_ready, make_app
from vllm_console.app import VllmConsoleApp
from vllm_console.config import Settings
from vllm_console.core.serve.diagnose import Phase
from vllm_console.widgets.chat.pane import ChatPane
from vllm_console.widgets.gpu.gauges import GpuGauges


@pytest.fixture(autouse=True)
def _fast_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VLLM_DELAY", "0.3")
    monkeypatch.delenv("FAKE_VLLM_SCENARIO", raising=False)


def active(app: VllmConsoleApp) -> str:
    return app.query_one("#side", TabbedContent).active


async def test_c_and_m_switch_tabs(settings: Settings, demo_catalog: Any) -> None:
    app = VllmConsoleApp(settings, catalog=demo_catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        assert active(app) == "tab-chat"
        assert app.focused is app.query_one("#chat-input", Input)
        assert app.query_one("#main").has_class("-wide-tab")
        app.query_one("#model-table").focus()
        await pilot.press("m")
        await pilot.pause()
        assert active(app) == "tab-metrics"
        await pilot.press("l")
        await pilot.pause()
        assert active(app) == "tab-server"


async def test_the_gpu_strip_says_no_gpu_calmly(settings: Settings, demo_catalog: Any) -> None:
    app = VllmConsoleApp(settings, catalog=demo_catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.panes_ready.wait()  # the strip joins after the side tabs
        await app.workers.wait_for_complete()
        await pilot.pause()
        gauges = app.query_one(GpuGauges)
        assert "No GPU" in str(gauges.query_one(".gpu-state").render())
        assert gauges.region.bottom <= app.query_one("Footer").region.y
        assert "no GPU" in app.sub_title


async def test_chat_follows_the_server_on_ready(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    app = make_app(tmp_path, fake_catalog, make_folder_entry)
    async with app.run_test(size=(120, 40)) as pilot:
        await launch_and_wait_ready(app, pilot)
        chat = app.query_one(ChatPane)
        config = chat.config
        assert config.base_url == f"http://127.0.0.1:{app.settings.port}/v1"
        assert config.model == "org/tiny-model" and config.source == "local server"
        pid = app.server.pid
        assert pid is not None
        gauges = app.query_one(GpuGauges)
        request = app.server_state.request
        assert request is not None
        name = request.server_name  # the launch dialog's default: the model's last part
        assert name == "tiny-model"
        await wait_until(pilot, lambda: pid in gauges.owners.get(name, ()), 10, "its PIDs")

        await pilot.press("c")
        await wait_until(
            pilot,
            lambda: chat.endpoint_status is not None and chat.endpoint_status.reachable,
            10,
            "the probe",
        )
        assert chat.send("Hi there")
        await wait_until(
            pilot,
            lambda: len(chat.turns) == 2 and not chat.busy,
            15,
            "the answer",
        )
        assert chat.turns[1].content.strip() == REPLY  # streamed from the stand-in

        app.server.stop()
        await app.server.wait_idle()
        await wait_until(pilot, lambda: not app.server_state.running, 10, "stopped")
        assert app.server_state.phase is not Phase.READY
        assert not gauges.owners
        assert chat.config.source == "local server"  # still where it was


async def test_escape_leaves_the_chat_prompt_for_the_model_table(
    settings: Settings, demo_catalog: Any
) -> None:
    """Typing in the chat takes every key; escape must give the console's keys back."""
    app = VllmConsoleApp(settings, catalog=demo_catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await app.panes_ready.wait()
        await pilot.press("c")
        await pilot.pause()
        assert app.focused is app.query_one("#chat-input", Input)
        await pilot.press("q")  # typed into the prompt, not quitting
        await pilot.pause()
        assert app.is_running
        await pilot.press("escape")
        await pilot.pause()
        assert app.focused is app.query_one("#model-table")
        await pilot.press("m")
        await pilot.pause()
        assert active(app) == "tab-metrics"
