"""Snapshots of the launch dialog and of the servers tab after a diagnosed failure.

Both are made deterministic: vLLM is "found" at a fixed path, the one member's pane is given
a fixed state and log (no process starts). Regenerate with `pytest tests/snapshots
--snapshot-update` after an intended change.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from vllm_console.app import VllmConsoleApp
from vllm_console.config import Settings
from vllm_console.core.serve.diagnose import Finding, Fix, Phase
from vllm_console.core.serve.install import VllmCommand
from vllm_console.core.serve.spec import LaunchRequest, LaunchSpec
from vllm_console.screens.launch import LaunchScreen

DEMO_SETTINGS = Settings(
    hf_hub_cache_override=Path("/home/you/.cache/huggingface/hub"),
    home=Path("/home/you"),
    cwd=Path("/home/you/work"),
    api_key="sk-not-shown",
)
VLLM = VllmCommand(("/home/you/venv/bin/vllm", "serve"), "test", distribution="vllm")
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


def test_launch_dialog(
    snap_compare: Any, demo_catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("vllm_console.screens.launch.find_vllm", lambda _setting: VLLM)

    async def open_dialog(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("enter")
        for _ in range(100):
            if isinstance(pilot.app.screen, LaunchScreen):
                break
            await pilot.pause(0.05)
        # Not settle(): the dialog's own worker waits for the dialog to close.
        for _ in range(100):
            if "exec " in str(pilot.app.screen.query_one("#launch-preview").render()):
                break
            await pilot.pause(0.05)

    app = VllmConsoleApp(DEMO_SETTINGS, catalog=demo_catalog)
    assert snap_compare(app, terminal_size=(120, 40), run_before=open_dialog)


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
