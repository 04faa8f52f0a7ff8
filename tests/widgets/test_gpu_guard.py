"""After a stop the console checks that the GPU memory came back, and offers to kill what holds it.

The stand-in vLLM runs for real; the stand-in NVML plays the GPU: every process it is told
about holds 2 GiB on GPU 0 for as long as it is alive, as NVML shows a process's memory until
it exits. The `stray_worker` scenario leaves a worker the stop cannot reach. With several
servers, the guard alone is fed snapshots by hand: one server stops while another grows or
shrinks.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.app import App

from tests.fakes.fake_nvml import FakeDevice, FakeNvml, FakeProc
from tests.widgets.console_helpers import fake_settings, wait_until
from tests.widgets.test_server_flow import open_dialog
from vllm_console.app import VllmConsoleApp
from vllm_console.controllers.gpu_guard import GpuGuard
from vllm_console.core.gpu.nvml import GpuProcess, GpuSample, GpuSnapshot, GpuState, Sampler
from vllm_console.core.gpu.owners import Holder, Release, attribute
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
            (nv.watched <= server_pids(app) or not pids_read)
            and sum(gpu.ours for gpu in app.gauges.shares()) >= EACH * len(nv.watched)
        ),
        10,
        "our memory on the GPU",
    )
    return pid


def server_pids(app: VllmConsoleApp) -> set[int]:
    """Every PID the strip knows of as one of our servers'."""
    return set().union(*app.gauges.owners.values())


def holders_shown(app: VllmConsoleApp) -> bool:
    """The dialog is up and composed (push_screen makes it current before it has children)."""
    return isinstance(app.screen, GpuHoldersScreen) and bool(app.screen.query("#holders-leave"))


def messages(app: App[Any]) -> list[str]:
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
        assert not server_pids(app)  # never read: our share is the change since launch
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


# -- several servers: the guard alone, fed snapshots by hand ---------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class GuardHost(App[None]):
    """Records the kill dialogs the guard asks for instead of showing them."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, tuple[Holder, ...], Callable[[list[int]], None]]] = []


def ask(app: App[Any], title: str, holders: tuple[Holder, ...], answer: Any) -> None:
    assert isinstance(app, GuardHost)
    app.asked.append((title, holders, answer))


def gpu0(**held: float) -> GpuSnapshot:
    """GPU 0 with each PID (`p100=12`) holding that many GiB, on top of 1 GiB of the driver's."""
    procs = tuple(
        GpuProcess(int(k[1:]), int(v * GiB), "VLLM::Worker", None) for k, v in held.items()
    )
    used = GiB + sum(p.used_memory or 0 for p in procs)
    sample = GpuSample(
        0, "GPU", None, 80 * GiB, used, 80 * GiB - used, processes=procs, processes_known=True
    )
    return GpuSnapshot(0.0, GpuState.OK, "ok", "550", (sample,))


CHAT_AND_EMBED = {"chat": frozenset({100, 101}), "embed": frozenset({200})}


def two_running(clock: Clock, app: GuardHost) -> GpuGuard:
    guard = GpuGuard(app, ask, timeout=10.0, clock=clock)
    for name, pids in CHAT_AND_EMBED.items():
        guard.launched(name)
        guard.add_pids(name, pids)
    running = gpu0(p100=12, p101=2, p200=3)
    guard.seen(attribute(running, CHAT_AND_EMBED))
    guard.snapshot(running)
    return guard


async def test_one_server_stops_while_another_grows_and_its_memory_comes_back() -> None:
    app, clock = GuardHost(), Clock()
    async with app.run_test() as pilot:
        guard = two_running(clock, app)
        guard.server_ended("chat", None)
        clock.now += 1
        guard.snapshot(gpu0(p101=2, p200=9))  # embed grows while chat's worker lets go
        assert guard.outcomes.get("chat") is None and not guard.idle.is_set()
        clock.now += 1
        guard.snapshot(gpu0(p200=30))  # chat's all gone; embed grew more than chat ever held
        assert guard.outcomes["chat"] is Release.RELEASED and guard.idle.is_set()
        await pilot.pause()
        assert messages(app) == ["GPU memory released 2.0 s after chat stopped."]
        assert app.asked == []


async def test_one_server_stops_and_its_own_worker_keeps_its_memory() -> None:
    app, clock = GuardHost(), Clock()
    async with app.run_test():
        guard = two_running(clock, app)
        guard.server_ended("chat", None)
        clock.now += 5
        guard.snapshot(gpu0(p101=2, p200=1))  # embed shrinks: it is not chat's memory back
        assert not app.asked
        clock.now += 5
        guard.snapshot(gpu0(p101=2, p200=1))
        assert guard.outcomes["chat"] is Release.HELD
        ((title, holders, answer),) = app.asked
        assert title == "GPU memory still held 10 s after chat stopped"
        assert [(h.pid, h.used) for h in holders] == [(101, 2 * GiB)]  # never embed's 200
        assert not guard.idle.is_set()  # until the dialog is answered
        answer([])  # leave it
        assert guard.idle.is_set()


async def test_a_pid_another_server_owns_now_is_never_watched_nor_offered() -> None:
    app, clock = GuardHost(), Clock()
    async with app.run_test():
        guard = two_running(clock, app)
        guard.add_pids("embed", {101})  # the PID was reused by embed's new worker
        guard.server_ended("chat", None)
        clock.now += 10
        guard.snapshot(gpu0(p100=12, p101=2, p200=3))
        ((_, holders, _),) = app.asked
        assert [h.pid for h in holders] == [100]


async def test_change_since_launch_is_watched_only_for_a_server_alone() -> None:
    app, clock = GuardHost(), Clock()
    async with app.run_test():
        baseline = gpu0()
        guard = GpuGuard(app, ask, timeout=10.0, clock=clock)
        guard.launched("chat")
        container = gpu0(p9001=14)  # NVML lists the host's PIDs: none is ours
        guard.seen(attribute(container, {"chat": {100}}, {"chat": baseline}))
        guard.snapshot(container)
        guard.add_pids("embed", {200})  # another server runs: the change could be its too
        guard.server_ended("chat", baseline)
        assert guard.watching == [] and guard.idle.is_set()
        guard.launched("chat")
        guard.seen(attribute(container, {"chat": {100}}, {"chat": baseline}))
        guard.server_ended("embed", None)  # nothing of embed's was ever seen on a GPU
        guard.server_ended("chat", baseline)  # now alone: its change since launch is watched
        (watching,) = guard.watching
        assert watching.watch.baseline is baseline
        clock.now += 10
        guard.snapshot(container)
        ((_, holders, _),) = app.asked
        assert [(h.pid, h.used) for h in holders] == [(None, 14 * GiB)]


async def test_a_relaunch_ends_only_its_own_watch() -> None:
    app, clock = GuardHost(), Clock()
    async with app.run_test():
        guard = two_running(clock, app)
        guard.server_ended("chat", None)
        guard.server_ended("embed", None)
        assert [w.server for w in guard.watching] == ["chat", "embed"]
        guard.launched("chat")
        assert [w.server for w in guard.watching] == ["embed"]
        clock.now += 1
        guard.snapshot(gpu0(p100=12, p101=2))  # the new chat's memory (same PIDs in this test)
        assert guard.outcomes == {"embed": Release.RELEASED} and guard.idle.is_set()


async def test_a_late_snapshot_does_not_bring_an_ended_server_back() -> None:
    app, clock = GuardHost(), Clock()
    async with app.run_test():
        guard = two_running(clock, app)
        guard.server_ended("embed", None)
        guard.add_pids("chat", {200})  # embed's PID, reused by a new worker of chat's
        guard.seen(attribute(gpu0(p100=12, p101=2, p200=3), CHAT_AND_EMBED))  # painted before
        guard.server_ended("chat", None)
        (watching,) = [w for w in guard.watching if w.server == "chat"]
        assert watching.watch.pids == {100, 101, 200}  # no ghost of embed holds 200 back
