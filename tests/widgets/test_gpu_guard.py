"""After a stop the console checks that the GPU memory came back, and offers to kill what holds it.

The stand-in vLLM runs for real; the stand-in NVML plays the GPU: every process it is told
about holds 2 GiB on GPU 0 for as long as it is alive, as NVML shows a process's memory until
it exits. The `stray_worker` scenario leaves a worker the stop cannot reach.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fake_nvml import FakeDevice, FakeNvml, FakeProc
from tests.widgets.console_helpers import fake_settings, wait_until
from tests.widgets.test_server_flow import open_dialog
from vllm_console.app import VllmConsoleApp
from vllm_console.core.gpu.nvml import Sampler
from vllm_console.core.gpu.owners import Release
from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.serve.proctable import proc_info, session_pids
from vllm_console.screens.gpu_holders import GpuHoldersScreen
from vllm_console.screens.launch import LaunchScreen

GiB = 1 << 30
EACH = 2 * GiB


class LiveNvml(FakeNvml):
    """GPU 0 lists each watched process while it lives, 2 GiB each, on top of 1 GiB."""

    def __init__(self) -> None:
        super().__init__([FakeDevice()])
        self.watched: set[int] = set()

    def _alive(self) -> list[int]:
        return sorted(pid for pid in self.watched if proc_info(pid) is not None)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[FakeProc]:
        alive = self._alive()
        self.devices[0].used = 1 * GiB + EACH * len(alive)
        return [FakeProc(pid, EACH) for pid in alive]


def live_factory(nv: LiveNvml) -> Callable[..., Sampler]:
    def make(interval: float) -> Sampler:
        return Sampler(nv, interval=0.25, process_interval=0.25)

    return make


def make_app(tmp_path: Path, fake_catalog: Any, make_folder_entry: Any, nv: LiveNvml) -> Any:
    settings = fake_settings(tmp_path)
    catalog = fake_catalog([make_folder_entry("org/tiny-model")])
    return VllmConsoleApp(settings, catalog=catalog, sampler_factory=live_factory(nv))


async def launch_on_the_gpu(
    app: VllmConsoleApp, pilot: Any, nv: LiveNvml, *, pids_read: bool = True
) -> int:
    """Launch, wait for ready, and put every process of the server on GPU 0."""
    await open_dialog(app, pilot, sampling=True)
    await pilot.press("ctrl+l")
    await wait_until(pilot, lambda: app.server_state.phase is Phase.READY, 20, "ready")
    pid = app.server.pid
    assert pid is not None
    await wait_until(pilot, lambda: len(session_pids(pid)) >= 3, 5, "engine and worker")
    nv.watched.update(session_pids(pid))
    # the console reads its server's PIDs and sees them on the GPU, by PID (until it has read
    # them, the share shows as the change since launch, which names no PID)
    await wait_until(
        pilot,
        lambda: (
            (nv.watched <= app.gauges.server_pids or not pids_read)
            and sum(o.used or 0 for o in app.gauges.ours()) >= EACH * len(nv.watched)
        ),
        10,
        "our memory on the GPU",
    )
    return pid


def holders_shown(app: VllmConsoleApp) -> bool:
    """The dialog is up and composed (push_screen makes it current before it has children)."""
    return isinstance(app.screen, GpuHoldersScreen) and bool(app.screen.query("#holders-leave"))


def messages(app: VllmConsoleApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_memory_released_after_a_stop_is_said(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    nv = LiveNvml()
    app = make_app(tmp_path, fake_catalog, make_folder_entry, nv)
    async with app.run_test(size=(120, 40)) as pilot:
        await launch_on_the_gpu(app, pilot, nv)
        await pilot.press("s")
        await wait_until(pilot, lambda: app.server_state.phase is Phase.STOPPED, 10, "stopped")
        guard = app.gpu_guard
        assert guard is not None
        await wait_until(pilot, lambda: guard.outcome is Release.RELEASED, 5, "released")
        assert any("GPU memory released" in m for m in messages(app))
        assert not isinstance(app.screen, GpuHoldersScreen)


@pytest.fixture
def strays(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The stand-in leaves a worker the stop cannot reach; whatever is left is killed after."""
    monkeypatch.setenv("FAKE_VLLM_SCENARIO", "stray_worker")
    left: list[int] = []
    yield left
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def stop_leaving_a_stray(
    app: VllmConsoleApp, pilot: Any, nv: LiveNvml, strays: list[int], *, pids_read: bool = True
) -> int:
    """Launch, stop, and wait for the dialog that names the stray worker; its PID."""
    await wait_until(pilot, app.panes_ready.is_set, 10, "the panes")
    assert app.gpu_guard is not None
    app.gpu_guard.timeout = 1.5
    await launch_on_the_gpu(app, pilot, nv, pids_read=pids_read)
    if not pids_read:
        assert not app.gauges.server_pids  # never read: our share is the change since launch
    found = [p for p in nv.watched if (i := proc_info(p)) and i.name.endswith("_TP")]
    assert len(found) == 1
    strays.extend(found)
    await pilot.press("s")
    await wait_until(pilot, lambda: app.server_state.phase is Phase.STOPPED, 10, "stop")
    await wait_until(pilot, lambda: holders_shown(app), 10, "the dialog")
    return found[0]


async def test_memory_still_held_names_the_pid_and_kill_frees_it(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any, strays: list[int]
) -> None:
    nv = LiveNvml()
    app = make_app(tmp_path, fake_catalog, make_folder_entry, nv)
    async with app.run_test(size=(120, 40)) as pilot:
        stray = await stop_leaving_a_stray(app, pilot, nv, strays)
        screen = app.screen
        assert isinstance(screen, GpuHoldersScreen) and app.gpu_guard is not None
        assert [h.pid for h in screen.holders] == [stray] and screen.pids == [stray]
        text = str(screen.query_one("#holders-list").render())
        assert f"(pid {stray}) holds 2.0 GiB on GPU 0" in text
        assert app.gpu_guard.outcome is Release.HELD
        await pilot.press("k")
        await wait_until(pilot, lambda: proc_info(stray) is None, 5, "the stray killed")
        await wait_until(pilot, lambda: app.gpu_guard.outcome is Release.RELEASED, 5, "released")
        assert any(f"pid {stray} killed" in m for m in messages(app))


async def test_a_stop_before_the_first_pid_read_still_names_the_worker(
    tmp_path: Path,
    fake_catalog: Any,
    make_folder_entry: Any,
    strays: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No periodic read of the server's processes has happened (our share is known only as
    the change since launch); the stop reads them, so the stray worker is named and killable."""
    import vllm_console.controllers.fleet as fleet_module

    monkeypatch.setattr(fleet_module, "PIDS_INTERVAL", 3600.0)
    nv = LiveNvml()
    app = make_app(tmp_path, fake_catalog, make_folder_entry, nv)
    async with app.run_test(size=(120, 40)) as pilot:
        stray = await stop_leaving_a_stray(app, pilot, nv, strays, pids_read=False)
        screen = app.screen
        assert isinstance(screen, GpuHoldersScreen)
        assert [h.pid for h in screen.holders] == [stray] and screen.pids == [stray]


async def test_leftover_vllm_memory_is_pointed_out_before_a_launch(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any, strays: list[int]
) -> None:
    nv = LiveNvml()
    app = make_app(tmp_path, fake_catalog, make_folder_entry, nv)
    async with app.run_test(size=(120, 40)) as pilot:
        stray = await stop_leaving_a_stray(app, pilot, nv, strays)
        await pilot.press("escape")  # leave it
        await pilot.pause()
        screen = await open_dialog(app, pilot, sampling=True)
        assert isinstance(screen, LaunchScreen)
        await wait_until(
            pilot,
            lambda: f"pid {stray}" in str(screen.query_one("#launch-gpu").render()),
            5,
            "the leftover in the launch dialog",
        )
        text = str(screen.query_one("#launch-gpu").render())
        assert "leftover vLLM" in text and "2.0 GiB on GPU 0" in text
        assert text.startswith("Fit: ")  # the estimate is there too
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: holders_shown(app), 5, "kill dialog")
        await pilot.press("k")
        await wait_until(pilot, lambda: proc_info(stray) is None, 5, "the stray killed")
        assert isinstance(app.screen, LaunchScreen)  # back in the dialog
        await wait_until(
            pilot,
            lambda: "leftover" not in str(screen.query_one("#launch-gpu").render()),
            5,
            "the warning gone",
        )
