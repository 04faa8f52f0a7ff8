"""The launch dialog says whether the spec fits the GPUs, and follows the fields and the GPUs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import App
from textual.widgets import Input

from tests.core.test_fit import entry_for
from tests.fakes.fake_nvml import FakeDevice, FakeNvml
from tests.widgets.console_helpers import fake_settings, wait_until
from vllm_console.core.gpu.fit import Verdict
from vllm_console.core.gpu.nvml import GpuSnapshot, Sampler
from vllm_console.core.serve.spec import LaunchSpec
from vllm_console.screens.launch import LaunchScreen
from vllm_console.screens.launch_gpu import GpuFitView

GiB = 1 << 30


def snapshot_of(*devices: FakeDevice) -> GpuSnapshot:
    return Sampler(FakeNvml(list(devices))).sample_once()


class Host(App[None]):
    def __init__(self, screen: LaunchScreen) -> None:
        super().__init__()
        self.dialog = screen

    def on_mount(self) -> None:
        self.push_screen(self.dialog)


def dialog(tmp_path: Path, gpus: Any, **kw: Any) -> LaunchScreen:
    settings = fake_settings(tmp_path)
    entry = entry_for("qwen2.5-7b-instruct", **kw)
    spec = LaunchSpec(str(entry.path), port=settings.port, gpu_memory_utilization=0.9)
    return LaunchScreen(
        settings, model_key=entry.key, model_id=entry.id, spec=spec, entry=entry, gpus=gpus
    )


def verdict(view: GpuFitView) -> Verdict | None:
    """The view's verdict now (a call, so that one read does not narrow the next)."""
    return view.fit.verdict if view.fit is not None else None


def shown(screen: LaunchScreen) -> str:
    return str(screen.query_one("#launch-gpu", GpuFitView).render())


async def test_fit_follows_the_fields_and_the_gpus(tmp_path: Path) -> None:
    state = {"snap": snapshot_of(FakeDevice(total=24 * GiB, used=1 * GiB))}
    screen = dialog(tmp_path, lambda: state["snap"])
    async with Host(screen).run_test(size=(120, 50)) as pilot:
        view = screen.query_one("#launch-gpu", GpuFitView)
        await wait_until(pilot, lambda: view.fit is not None, 5, "the fit")
        assert view.fit is not None and view.fit.verdict is Verdict.FITS, shown(screen)
        text = shown(screen)
        assert text.startswith("Fit: fits — KV cache")
        assert "largest max model length that fits: 32,768" in text
        assert "utilization needed: 0.7" in text  # weights 14.2 GiB + 1.75 GiB KV on 24 GiB

        screen.query_one("#field-gpu_memory_utilization", Input).value = "0.5"
        await pilot.pause()
        assert verdict(view) is Verdict.WONT_FIT and "-wont-fit" in view.classes
        assert "Fit: won't fit" in shown(screen)

        screen.query_one("#field-gpu_memory_utilization", Input).value = "0.9"
        screen.query_one("#field-max_model_len", Input).value = "4096"
        await pilot.pause()
        assert verdict(view) is Verdict.FITS and view.fit.estimate.max_model_len == 4096

        # another process takes most of the GPU: the next sample says so within a second
        state["snap"] = snapshot_of(FakeDevice(total=24 * GiB, used=16 * GiB))
        await wait_until(
            pilot, lambda: view.fit is not None and view.fit.verdict is Verdict.WONT_FIT, 3
        )
        assert "8.0 GiB free of 24.0 GiB per GPU" in shown(screen)


async def test_no_gpu_is_said_and_tensor_parallel_needs_gpus(tmp_path: Path) -> None:
    state = {"snap": Sampler(FakeNvml([])).sample_once()}
    screen = dialog(tmp_path, lambda: state["snap"])
    async with Host(screen).run_test(size=(120, 50)) as pilot:
        view = screen.query_one("#launch-gpu", GpuFitView)
        await wait_until(pilot, lambda: "GPU" in shown(screen), 5)
        assert view.fit is not None and view.fit.verdict is Verdict.NO_GPU
        assert shown(screen).startswith("Fit: no GPU — only a CPU build of vLLM can run this")
        state["snap"] = snapshot_of(FakeDevice(total=80 * GiB))
        screen.query_one("#field-tensor_parallel_size", Input).value = "2"
        await pilot.pause()
        assert verdict(view) is Verdict.WONT_FIT
        assert "needs 2 GPUs (tensor x pipeline parallel), 1 here" in shown(screen)


async def test_without_gpu_readings_the_lines_are_hidden(tmp_path: Path) -> None:
    screen = dialog(tmp_path, None)
    async with Host(screen).run_test(size=(120, 50)) as pilot:
        await pilot.pause()
        assert not screen.query_one("#launch-gpu", GpuFitView).display
