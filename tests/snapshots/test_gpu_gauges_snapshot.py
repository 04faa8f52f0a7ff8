"""Snapshots of the GPU strip with fixed data from the stand-in NVML.

Two minutes of history are made by ticking a `Sampler` on a fake clock, so the picture does
not depend on timing. Regenerate after an intended change:

    .venv/bin/pytest tests/snapshots/test_gpu_gauges_snapshot.py --snapshot-update
"""

from __future__ import annotations

import math
from typing import Any

from textual.app import App, ComposeResult

from tests.fakes.fake_nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeDevice, FakeNvml, FakeProc
from vllm_console.core.gpu.nvml import GpuSnapshot, Sampler
from vllm_console.widgets.gpu.gauges import GpuGauges

GiB = 1 << 30
ENGINE, WORKER, TRAINER, XORG = 4242, 4243, 977, 1200
EMBED, WORKER_TP1 = 5151, 4244
NAMES = {
    ENGINE: "VLLM::EngineCore",
    WORKER: "VLLM::Worker_TP0",
    WORKER_TP1: "VLLM::Worker_TP1",
    EMBED: "VLLM::EngineCore",
    TRAINER: "python3",
    XORG: "Xorg",
}
TICKS = 240  # two minutes at 0.5 s


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def demo_snapshot() -> GpuSnapshot:
    """An H100 where our server loaded a model and serves, next to an L4 a trainer uses."""
    nv = FakeNvml(
        [
            FakeDevice(temperature=61, power_mw=312_000),
            FakeDevice(
                name="NVIDIA L4",
                uuid="GPU-1",
                total=24 * GiB,
                temperature=44,
                power_mw=31_000,
                power_limit_mw=72_000,
            ),
        ]
    )
    clock = Clock()
    sampler = Sampler(
        nv,
        interval=0.5,
        names=lambda pid: (NAMES.get(pid), NAMES.get(pid)),
        clock=clock,
        wall=lambda: 1_764_000_000.0,
    )
    assert sampler.open() is None
    snap = None
    for tick in range(TICKS):
        loaded = min(1.0, tick / 60)
        h100, l4 = nv.devices
        h100.used = int(GiB + loaded * 62 * GiB)
        h100.util_gpu = int(45 + 45 * abs(math.sin(tick / 9))) if tick > 70 else int(loaded * 8)
        h100.processes = [FakeProc(ENGINE, int(loaded * 60 * GiB)), FakeProc(TRAINER, GiB)]
        l4.used = int(11.5 * GiB) if tick > 100 else 3 * GiB
        l4.util_gpu = 97 if tick > 100 else 4
        l4.processes = [FakeProc(TRAINER, int(11 * GiB)), FakeProc(XORG, GiB // 4)]
        snap = sampler.tick()
        clock.now += 0.5
    sampler.close()
    assert snap is not None
    return snap


def fleet_snapshot() -> GpuSnapshot:
    """Two servers: chat on both GPUs (tensor parallel), embed beside it on the H100, and a
    trainer's process on the H100 that is none of ours."""
    nv = FakeNvml(
        [
            FakeDevice(
                used=int(54.5 * GiB),
                util_gpu=71,
                temperature=58,
                power_mw=402_000,
                processes=[
                    FakeProc(WORKER, int(38.2 * GiB)),
                    FakeProc(EMBED, int(6.1 * GiB)),
                    FakeProc(TRAINER, 9 * GiB),
                ],
            ),
            FakeDevice(
                name="NVIDIA H100 80GB HBM3",
                uuid="GPU-1",
                used=int(39.0 * GiB),
                util_gpu=69,
                temperature=56,
                power_mw=389_000,
                processes=[FakeProc(WORKER_TP1, int(38.2 * GiB))],
            ),
        ]
    )
    sampler = Sampler(
        nv, names=lambda pid: (NAMES.get(pid), NAMES.get(pid)), wall=lambda: 1_764_000_000.0
    )
    return sampler.sample_once()


FLEET = {"chat": frozenset({ENGINE, WORKER, WORKER_TP1}), "embed": frozenset({EMBED})}


def no_driver_snapshot() -> GpuSnapshot:
    nv = FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    return Sampler(nv, wall=lambda: 1_764_000_000.0).sample_once()


class StripHost(App[None]):
    """The strip alone, fed a fixed snapshot (no sampler thread)."""

    def __init__(
        self, snapshot: GpuSnapshot, owners: dict[str, frozenset[int]] | None = None
    ) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.owners = owners or {}

    def compose(self) -> ComposeResult:
        yield GpuGauges(sampler_factory=None)

    def on_mount(self) -> None:
        gauges = self.query_one(GpuGauges)
        gauges.owners = self.owners
        gauges.snapshot = self.snapshot


async def settle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.pause()


def test_gpu_gauges_120x10(snap_compare: Any) -> None:
    app = StripHost(demo_snapshot(), {"chat": frozenset({ENGINE, WORKER})})
    assert snap_compare(app, terminal_size=(120, 10), run_before=settle)


def test_gpu_gauges_80x10(snap_compare: Any) -> None:
    app = StripHost(demo_snapshot(), {"chat": frozenset({ENGINE, WORKER})})
    assert snap_compare(app, terminal_size=(80, 10), run_before=settle)


def test_gpu_gauges_two_servers_120x10(snap_compare: Any) -> None:
    app = StripHost(fleet_snapshot(), FLEET)
    assert snap_compare(app, terminal_size=(120, 10), run_before=settle)


def test_gpu_gauges_no_driver_80x3(snap_compare: Any) -> None:
    app = StripHost(no_driver_snapshot())
    assert snap_compare(app, terminal_size=(80, 3), run_before=settle)
