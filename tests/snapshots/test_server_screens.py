"""Snapshots of the launch dialog and of the servers tab after a diagnosed failure.

All are made deterministic: vLLM is "found" at a fixed path, the port check gives a fixed
answer, the GPUs are the stand-in NVML's, the one member's pane is given a fixed state and log (no
process starts). Regenerate with `pytest tests/snapshots --snapshot-update` after an
intended change.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.app import App

from tests.fakes.fake_nvml import FakeDevice, FakeNvml
from vllm_console.app import VllmConsoleApp
from vllm_console.config import Settings
from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.core.fleet.model import FleetContext
from vllm_console.core.gpu.nvml import Sampler
from vllm_console.core.serve.diagnose import Finding, Fix, Phase
from vllm_console.core.serve.install import VllmCommand
from vllm_console.core.serve.ports import PortChoice
from vllm_console.core.serve.spec import LaunchRequest, LaunchSpec
from vllm_console.screens import launch_form as form
from vllm_console.screens.launch import LaunchScreen

DEMO_SETTINGS = Settings(
    hf_hub_cache_override=Path("/home/you/.cache/huggingface/hub"),
    home=Path("/home/you"),
    cwd=Path("/home/you/work"),
    api_key="sk-not-shown",
)
VLLM = VllmCommand(("/home/you/venv/bin/vllm", "serve"), "test", distribution="vllm")
GiB = 1 << 30
LOG = [
    "(APIServer pid=4242) INFO 11-26 11:06:12 [api_server.py:1234] vLLM API server version 0.32.0",
    "(EngineCore pid=4244) INFO 11-26 11:06:20 [gpu_model_runner.py:3338] Starting to load model",
    "(EngineCore pid=4244) INFO 11-26 11:06:31 [default_loader.py:501] Loading weights took 9.1 s",
    "(EngineCore pid=4244) ERROR 11-26 11:06:33 [core.py:708] ValueError: To serve at least one "
    "request with the model's max seq len (32768), (4.00 GiB KV cache is needed, which is "
    "larger than the available KV cache memory (1.41 GiB). Based on the available memory, the "
    "estimated maximum model length is 11568.",
    "(APIServer pid=4242) ERROR 11-26 11:06:34 [api_server.py:1302] Engine core initialization "
    "failed. See root cause above.",
]


async def settle(pilot: Any) -> None:
    await pilot.app.panes_ready.wait()  # the side tabs join after the first frame
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.fixture(autouse=True)
def _fixed_vllm_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM found at one path; the asked port free, whatever listens on this machine."""
    monkeypatch.setattr("vllm_console.screens.launch.find_vllm", lambda _setting: VLLM)
    monkeypatch.setattr(
        "vllm_console.screens.launch.choose_port",
        lambda _host, port, _taken: PortChoice(port, port),
    )


async def wait_for_preview(pilot: Any) -> None:
    for _ in range(100):
        if "exec " in str(pilot.app.screen.query_one("#launch-preview").render()):
            break
        await pilot.pause(0.05)


def test_launch_dialog(snap_compare: Any, demo_catalog: Any) -> None:

    async def open_dialog(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("enter")
        for _ in range(100):
            if isinstance(pilot.app.screen, LaunchScreen):
                break
            await pilot.pause(0.05)
        # Not settle(): the dialog's own worker waits for the dialog to close.
        await wait_for_preview(pilot)

    app = VllmConsoleApp(DEMO_SETTINGS, catalog=demo_catalog)
    assert snap_compare(app, terminal_size=(120, 40), run_before=open_dialog)


class LaunchHost(App[None]):
    """The dialog alone, beside a fleet: two GPUs, GPU 1 checked, which another server that
    is still starting will hold 40 GiB of; its name taken; port 8000 busy."""

    def __init__(self, entry: ModelEntry) -> None:
        super().__init__()
        self.entry = entry

    def on_mount(self) -> None:
        gpus = Sampler(
            FakeNvml([FakeDevice(used=1 * GiB), FakeDevice(uuid="GPU-1", used=3 * GiB)])
        ).sample_once()
        fleet = FleetContext(
            names=frozenset({"Qwen2.5-7B-Instruct"}),
            ports=frozenset({8000}),
            held={1: 40 * GiB},
        )
        entry = self.entry
        spec = form.initial_spec(DEMO_SETTINGS, str(entry.path), entry.id, None)
        spec = replace(spec, gpus=(1,), gpu_memory_utilization=0.9)
        screen = LaunchScreen(
            DEMO_SETTINGS,
            model_key=entry.key,
            model_id=entry.id,
            spec=spec,
            entry=entry,
            gpus=lambda: gpus,
            fleet=fleet,
        )
        self.push_screen(screen)


@pytest.mark.parametrize("size", [(100, 30), (120, 40)], ids=["100x30", "120x40"])
def test_launch_dialog_beside_a_fleet(
    snap_compare: Any,
    demo_models: list[ModelEntry],
    monkeypatch: pytest.MonkeyPatch,
    size: tuple[int, int],
) -> None:
    monkeypatch.setattr(
        "vllm_console.screens.launch.choose_port",
        lambda _host, port, _taken: PortChoice(port, port + 1, "vllm/4242"),
    )

    async def settle_dialog(pilot: Any) -> None:
        await wait_for_preview(pilot)
        await pilot.pause(0.1)

    assert snap_compare(LaunchHost(demo_models[0]), terminal_size=size, run_before=settle_dialog)


def test_server_pane_after_a_failure(snap_compare: Any, demo_catalog: Any) -> None:
    finding = Finding(
        "max-model-len",
        "The KV cache cannot hold one request of the model's max length (32768 tokens).",
        "Relaunch with --max-model-len 11568 (vLLM's estimate), or raise GPU memory utilization.",
        "",
        Fix("max_model_len", 11568, "max model length 11568"),
    )
    spec = LaunchSpec("/home/you/models/Qwen2.5-7B-Instruct", served_model_name="qwen")
    request = LaunchRequest("k", "Qwen/Qwen2.5-7B-Instruct", spec.model, spec, ("vllm",))

    async def show_failure(pilot: Any) -> None:
        await settle(pilot)
        pane = await pilot.app.fleet.add_local("qwen")  # a member, as a launch makes one
        pilot.app.fleet.select("qwen")
        pane._set_state(
            phase=Phase.FAILED,
            label="qwen",
            phase_since=time.monotonic(),
            phase_times=(("starting", 8.2), ("loading weights", 12.6)),
            findings=(finding,),
            note="exit code 1",
            request=request,
        )
        pane.log_view.feed(LOG)
        pilot.app.action_show_log()
        await pilot.pause(0.2)

    app = VllmConsoleApp(DEMO_SETTINGS, catalog=demo_catalog)
    assert snap_compare(app, terminal_size=(120, 40), run_before=show_failure)
