"""The GPU gauges inside a small host app, sampled from the stand-in NVML by their own worker."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Static

from tests.fakes.fake_nvml import (
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_UNKNOWN,
    FakeDevice,
    FakeNvml,
    FakeProc,
    NVMLError,
)
from vllm_console.core.gpu.nvml import GpuSnapshot, GpuState, Sampler
from vllm_console.widgets.gpu.block import (
    GpuBlock,
    MemoryBar,
    ProcessRow,
    memory_class,
    process_lines,
    spark,
)
from vllm_console.widgets.gpu.gauges import GpuGauges, columns_for, memory_summary
from vllm_console.widgets.gpu.shares import ShareLine, cells, wrap

GiB = 1 << 30
NAMES = {
    100: ("VLLM::EngineCore", "VLLM::EngineCore"),
    101: ("VLLM::Worker_TP0", "VLLM::Worker_TP0"),
    102: ("VLLM::EngineCore", "VLLM::EngineCore"),
    103: ("VLLM::Worker_TP1", "VLLM::Worker_TP1"),
    200: ("python3", "python3 train.py"),
    5555: ("?", None),
}


def names(pid: int) -> tuple[str | None, str | None]:
    return NAMES.get(pid, (None, None))


def factory(nv: FakeNvml) -> Callable[..., Sampler]:
    def make(interval: float) -> Sampler:
        return Sampler(nv, interval=interval, process_interval=interval, names=names)

    return make


class GaugesHost(App[None]):
    def __init__(self, nv: FakeNvml | None, **kw: Any) -> None:
        super().__init__()
        self.nv = nv
        self.kw = kw
        self.updates: list[GpuGauges.Updated] = []

    def compose(self) -> ComposeResult:
        make = factory(self.nv) if self.nv is not None else None
        yield GpuGauges(sampler_factory=make, interval=0.25, **self.kw)

    def on_gpu_gauges_updated(self, message: GpuGauges.Updated) -> None:
        self.updates.append(message)


def two_gpus() -> FakeNvml:
    return FakeNvml(
        [
            FakeDevice(
                used=16 * GiB,
                util_gpu=87,
                temperature=61,
                power_mw=312_500,
                processes=[FakeProc(100, 14 * GiB), FakeProc(101, 2 * GiB), FakeProc(200, GiB)],
            ),
            FakeDevice(
                name="NVIDIA L4",
                uuid="GPU-1",
                total=24 * GiB,
                used=GiB // 2,
                power_limit_mw=72_000,
            ),
        ]
    )


async def until(pilot: Pilot[None], check: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the gauges")
        await pilot.pause(0.02)


def gauges(app: App[None]) -> GpuGauges:
    return app.query_one(GpuGauges)


def blocks(app: App[None]) -> list[GpuBlock]:
    return list(app.query(GpuBlock))


def block_text(block: GpuBlock) -> str:
    parts = [str(block.border_title), str(block.border_subtitle)]
    parts += [str(s.render()) for s in block.query(Static) if s.display]
    parts += [str(line.render()) for line in block.query(ShareLine) if line.display]
    parts += [f"{r.text} {r.amount}" for r in block.query(ProcessRow) if r.display]
    return "\n".join(parts)


def state_line(app: App[None]) -> Static:
    return app.query_one(".gpu-state", Static)


async def test_two_gpus_fill_in() -> None:
    app = GaugesHost(two_gpus())
    async with app.run_test(size=(120, 12)) as pilot:
        await until(pilot, lambda: len(blocks(app)) == 2 and blocks(app)[1].sample is not None)
        first, second = (block_text(b) for b in blocks(app))
        assert "GPU 0 · NVIDIA H100 80GB HBM3" in first
        assert "16.0 / 80 GiB  20%" in first
        assert "87%" in first
        assert "61°C · 312 / 700 W" in first
        assert "GPU 1 · NVIDIA L4" in second
        assert "0.5 / 24 GiB   2%" in second
        assert "no processes" in second
        assert not state_line(app).display
        assert app.updates and app.updates[-1].snapshot.available
        assert app.updates[-1].shares == ()  # no server of ours yet
        assert gauges(app).has_class("-cols-2")


async def test_history_grows_with_each_tick() -> None:
    nv = two_gpus()
    app = GaugesHost(nv)
    async with app.run_test(size=(120, 12)) as pilot:
        await until(pilot, lambda: len(app.updates) >= 3)
        last = app.updates[-1].snapshot
        assert len(last.history[0]) >= 3
        assert last.history[0][-1].util_gpu == 87


@pytest.mark.parametrize(
    ("used_gib", "wanted"),
    [(10, "-mem-ok"), (60, "-mem-warn"), (76, "-mem-high")],
)
async def test_memory_bar_class_by_threshold(used_gib: int, wanted: str) -> None:
    nv = FakeNvml([FakeDevice(used=used_gib * GiB)])
    app = GaugesHost(nv)
    async with app.run_test(size=(80, 10)) as pilot:
        await until(pilot, lambda: blocks(app) and blocks(app)[0].sample is not None)
        bar = blocks(app)[0].query_one(MemoryBar)
        numbers = blocks(app)[0].query_one(".gpu-mem-text")
        assert bar.has_class(wanted) and numbers.has_class(wanted)
        others = {"-mem-ok", "-mem-warn", "-mem-high", "-mem-na"} - {wanted}
        assert not any(bar.has_class(name) or numbers.has_class(name) for name in others)


def test_memory_class_boundaries() -> None:
    assert memory_class(None) == "-mem-na"
    assert memory_class(0.0) == "-mem-ok"
    assert memory_class(0.6999) == "-mem-ok"
    assert memory_class(0.70) == "-mem-warn"
    assert memory_class(0.8999) == "-mem-warn"
    assert memory_class(0.90) == "-mem-high"


async def test_unsupported_fields_show_na() -> None:
    unsupported = {
        "nvmlDeviceGetUtilizationRates",
        "nvmlDeviceGetTemperature",
        "nvmlDeviceGetPowerUsage",
        "nvmlDeviceGetEnforcedPowerLimit",
        "nvmlDeviceGetPowerManagementLimit",
        "nvmlDeviceGetMemoryInfo",
        "nvmlDeviceGetComputeRunningProcesses",
        "nvmlDeviceGetGraphicsRunningProcesses",
    }
    nv = FakeNvml([FakeDevice(unsupported=unsupported)])
    app = GaugesHost(nv)
    async with app.run_test(size=(80, 10)) as pilot:
        await until(pilot, lambda: blocks(app) and blocks(app)[0].sample is not None)
        block = blocks(app)[0]
        text = block_text(block)
        assert "N/A / N/A GiB  N/A" in text
        assert "N/A °C · N/A / N/A W" in text
        assert str(block.query_one(".gpu-util-text", Static).render()) == "N/A"
        assert "processes: N/A (not reported)" in text
        assert block.query_one(MemoryBar).has_class("-mem-na")


async def test_our_processes_are_highlighted_and_summed() -> None:
    nv = two_gpus()
    app = GaugesHost(nv)
    async with app.run_test(size=(120, 12)) as pilot:
        await until(pilot, lambda: len(blocks(app)) == 2 and blocks(app)[0].sample is not None)
        gauges(app).set_pids("chat", frozenset({100, 101}))
        await until(pilot, lambda: blocks(app)[0].has_class("-serving"))
        first, second = blocks(app)
        # 17 GiB listed on a GPU that uses 16: the lists are older than the memory reading
        assert "chat 16.0 GiB" in block_text(first)
        assert "not ours" not in block_text(first)
        rows = [r for r in first.query(ProcessRow) if r.display]
        assert [(r.text, r.has_class("-ours")) for r in rows] == [
            ("● 100 chat · VLLM::EngineCore", True),
            ("● 101 chat · VLLM::Worker_TP0", True),
            ("  200 python3", False),
        ]
        assert first.query_one(MemoryBar).ours == 16 * GiB
        assert "not ours 0.5 GiB" in block_text(second)
        assert "chat" not in block_text(second)
        assert not second.has_class("-serving")
        await until(pilot, lambda: app.updates[-1].shares)
        assert [g.ours for g in app.updates[-1].shares] == [16 * GiB, 0]
        assert app.updates[-1].by_owner == {"chat": 16 * GiB}


def fleet_gpus() -> FakeNvml:
    """GPU 0: chat (100, 101) beside embed (102) and a trainer; GPU 1: chat's second worker."""
    return FakeNvml(
        [
            FakeDevice(
                used=20 * GiB,
                processes=[
                    FakeProc(100, 12 * GiB),
                    FakeProc(101, 2 * GiB),
                    FakeProc(102, 3 * GiB),
                    FakeProc(200, 2 * GiB),
                ],
            ),
            FakeDevice(
                name="NVIDIA L4",
                uuid="GPU-1",
                total=24 * GiB,
                used=9 * GiB,
                processes=[FakeProc(103, 8 * GiB)],
            ),
        ]
    )


async def test_two_servers_on_one_gpu_are_named_with_their_shares() -> None:
    app = GaugesHost(fleet_gpus())
    async with app.run_test(size=(120, 14)) as pilot:
        await until(pilot, lambda: len(blocks(app)) == 2 and blocks(app)[1].sample is not None)
        gauges(app).owners = {"chat": frozenset({100, 101, 103}), "embed": frozenset({102})}
        await until(pilot, lambda: "embed" in block_text(blocks(app)[0]))
        first, second = blocks(app)
        share_line = str(first.query_one(ShareLine).render())
        assert share_line == "chat 14.0 GiB · embed 3.0 GiB · not ours 3.0 GiB"
        rows = [(r.text, r.amount, r.has_class("-ours")) for r in first.query(ProcessRow)]
        assert rows == [
            ("● 100 chat · VLLM::EngineCore", "12.0 GiB", True),
            ("● 102 embed · VLLM::EngineCore", "3.0 GiB", True),
            ("+ 2 more".rjust(10), "4.0 GiB", False),
        ]
        assert first.query_one(MemoryBar).ours == 17 * GiB
        # one server on two GPUs: its second worker is named on the L4 too
        assert str(second.query_one(ShareLine).render()) == "chat 8.0 GiB · not ours 1.0 GiB"
        await until(pilot, lambda: len(app.updates[-1].by_owner) == 2)
        assert app.updates[-1].by_owner == {"chat": 22 * GiB, "embed": 3 * GiB}


async def test_shares_wrap_between_entries_in_a_narrow_block() -> None:
    app = GaugesHost(fleet_gpus())
    async with app.run_test(size=(40, 16)) as pilot:
        await until(pilot, lambda: len(blocks(app)) == 2 and blocks(app)[0].sample is not None)
        gauges(app).owners = {"chat": frozenset({100, 101}), "embed": frozenset({102})}
        await until(pilot, lambda: "embed" in block_text(blocks(app)[0]))
        await pilot.pause()
        line = blocks(app)[0].query_one(ShareLine)
        assert str(line.render()).splitlines() == [
            "chat 14.0 GiB · embed 3.0 GiB",
            "not ours 3.0 GiB",
        ]
        assert line.size.height == 2


def test_wrap_breaks_only_between_entries() -> None:
    entries = [
        ("chat", "14.0 GiB", True),
        ("embed", "3.0 GiB", True),
        ("not ours", "3.0 GiB", False),
    ]
    assert [len(line) for line in wrap(entries, 80)] == [3]
    assert [len(line) for line in wrap(entries, 32)] == [2, 1]
    assert [len(line) for line in wrap(entries, 5)] == [1, 1, 1]  # too long: a line each
    assert [len(line) for line in wrap(entries, 0)] == [3]  # not laid out yet
    assert wrap([], 10) == []


def test_where_shares_wrap_does_not_move_with_the_figures() -> None:
    small = [("chat", "2.0 GiB", True), ("not ours", "1.0 GiB", False)]
    large = [("chat", "140.0 GiB", True), ("not ours", "100.5 GiB", False)]
    since = [("chat", "2.0 GiB since launch", True)]
    for width in range(20, 45):
        assert len(wrap(small, width)) == len(wrap(large, width)), width
    assert cells(small[0]) == cells(large[0]) == len("chat 999.9 GiB")
    assert cells(since[0]) == len("chat 999.9 GiB since launch")


async def test_server_names_are_shown_never_obeyed() -> None:
    app = GaugesHost(fleet_gpus())
    hostile = "[bold red]x[/]\x1b[2J\n"
    async with app.run_test(size=(120, 14)) as pilot:
        await until(pilot, lambda: blocks(app) and blocks(app)[0].sample is not None)
        gauges(app).owners = {hostile: frozenset({102})}
        await until(pilot, lambda: blocks(app)[0].has_class("-serving"))
        block = blocks(app)[0]
        shown = str(block.query_one(ShareLine).render())
        assert shown.startswith("[bold red]x[/]") and "\x1b" not in shown and "\n" not in shown
        row = next(r for r in block.query(ProcessRow) if r.has_class("-ours"))
        assert row.text.startswith("● 102 [bold red]x[/]") and "\x1b" not in row.text


async def test_a_server_that_stops_is_forgotten() -> None:
    app = GaugesHost(fleet_gpus())
    async with app.run_test(size=(120, 14)) as pilot:
        await until(pilot, lambda: blocks(app) and blocks(app)[0].sample is not None)
        baseline = gauges(app).snapshot
        gauges(app).launching("chat")
        gauges(app).set_pids("chat", frozenset({100, 101}))
        gauges(app).set_pids("embed", frozenset({102}))
        await until(pilot, lambda: "embed 3.0 GiB" in block_text(blocks(app)[0]))
        assert gauges(app).forget("chat") is baseline
        assert gauges(app).forget("embed") is None  # attached to, never launched: no baseline
        await until(pilot, lambda: blocks(app)[0].has_class("-no-server"))
        assert "chat" not in block_text(blocks(app)[0])
        assert gauges(app).owners == {} and gauges(app).baselines == {}


async def test_container_case_counts_the_change_since_launch() -> None:
    # Inside a container NVML lists host PIDs: none matches ours, so the growth counts.
    nv = FakeNvml([FakeDevice(used=2 * GiB)])
    app = GaugesHost(nv)
    async with app.run_test(size=(80, 10)) as pilot:
        await until(pilot, lambda: app.updates)
        baseline = app.updates[-1].snapshot
        nv.devices[0].used = 16 * GiB
        nv.devices[0].processes = [FakeProc(5555, 14 * GiB)]
        gauges(app).baselines = {"chat": baseline}
        gauges(app).owners = {"chat": frozenset({100})}
        await until(pilot, lambda: "chat 14.0" in block_text(blocks(app)[0]))
        block = blocks(app)[0]
        assert "chat 14.0 GiB since launch · not ours 2.0 GiB" in block_text(block)
        assert not any(r.has_class("-ours") for r in block.query(ProcessRow))
        assert block.has_class("-serving")


async def test_container_case_with_two_servers_starting_is_unattributed() -> None:
    nv = FakeNvml([FakeDevice(used=2 * GiB)])
    app = GaugesHost(nv)
    async with app.run_test(size=(80, 10)) as pilot:
        await until(pilot, lambda: app.updates)
        baseline = app.updates[-1].snapshot
        nv.devices[0].used = 16 * GiB
        nv.devices[0].processes = [FakeProc(5555, 7 * GiB), FakeProc(5556, 7 * GiB)]
        gauges(app).baselines = {"chat": baseline, "embed": baseline}
        gauges(app).owners = {"chat": frozenset({100}), "embed": frozenset({102})}
        await until(pilot, lambda: "unattributed 16.0" in block_text(blocks(app)[0]))
        block = blocks(app)[0]
        assert str(block.query_one(ShareLine).render()) == "unattributed 16.0 GiB"
        assert not block.has_class("-serving")
        assert app.updates[-1].by_owner == {}


async def test_unknown_share_without_pids_or_baseline() -> None:
    nv = FakeNvml([FakeDevice(processes=[FakeProc(5555, GiB)])])
    app = GaugesHost(nv)
    async with app.run_test(size=(80, 10)) as pilot:
        await until(pilot, lambda: blocks(app) and blocks(app)[0].sample is not None)
        gauges(app).owners = {"chat": frozenset({100})}
        await until(pilot, lambda: "unattributed 1.0 GiB" in block_text(blocks(app)[0]))


async def test_no_driver_is_a_plain_state() -> None:
    app = GaugesHost(FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND))
    async with app.run_test(size=(80, 10)) as pilot:
        await until(pilot, lambda: app.updates)
        line = state_line(app)
        assert line.display
        assert str(line.render()) == (
            "No GPU — no NVIDIA driver (NVML: NVML Shared Library Not Found); "
            "a CPU build of vLLM can still run"
        )
        assert not line.has_class("-error")
        assert blocks(app) == []
        assert memory_summary(app.updates[-1].snapshot) == "no GPU"


async def test_no_gpu_is_a_plain_state() -> None:
    app = GaugesHost(FakeNvml([]))
    async with app.run_test(size=(80, 10)) as pilot:
        await until(pilot, lambda: app.updates)
        text = str(state_line(app).render())
        assert text.startswith("No GPU — the NVIDIA driver reports no GPU")
        assert text.endswith("a CPU build of vLLM can still run")


async def test_nvml_failing_mid_run_shows_the_state_and_recovers() -> None:
    nv = two_gpus()
    app = GaugesHost(nv)
    async with app.run_test(size=(120, 12)) as pilot:
        await until(pilot, lambda: len(blocks(app)) == 2 and blocks(app)[0].sample is not None)

        def broken() -> int:
            raise NVMLError(NVML_ERROR_UNKNOWN)

        nv.nvmlDeviceGetCount = broken  # type: ignore[method-assign]
        await until(pilot, lambda: state_line(app).display)
        assert str(state_line(app).render()) == (
            "GPU readings unavailable — NVML: Unknown Error; retrying"
        )
        assert state_line(app).has_class("-error")
        assert not app.query_one(".gpu-blocks").display
        assert app.is_running
        del nv.nvmlDeviceGetCount  # the driver answers again
        await until(pilot, lambda: not state_line(app).display)
        assert app.query_one(".gpu-blocks").display


async def test_a_lost_gpu_is_shown_in_its_block() -> None:
    nv = two_gpus()
    app = GaugesHost(nv)
    async with app.run_test(size=(120, 12)) as pilot:
        await until(pilot, lambda: len(blocks(app)) == 2 and blocks(app)[1].sample is not None)
        nv.devices[1].lost = True
        await until(pilot, lambda: blocks(app)[1].has_class("-lost"))
        assert "NVML: GPU is lost" in block_text(blocks(app)[1])
        assert not blocks(app)[0].has_class("-lost")


def sampler_threads() -> list[int]:
    """Threads now inside `Sampler.run`."""
    found = []
    for ident, frame in sys._current_frames().items():
        stack = frame
        while stack is not None:
            if stack.f_code is Sampler.run.__code__:
                found.append(ident)
                break
            stack = stack.f_back  # type: ignore[assignment]
    return found


async def test_unmount_stops_the_worker_thread() -> None:
    nv = two_gpus()
    app = GaugesHost(nv)
    async with app.run_test(size=(120, 12)) as pilot:
        await until(pilot, lambda: app.updates)
        assert len(sampler_threads()) == 1
        worker = next(w for w in app.workers if w.group == "gpu-sampler")
        await gauges(app).remove()
        await until(pilot, lambda: worker.is_finished and not sampler_threads())
        assert nv.initialised == 0  # NVML shut down by the sampler
        assert app.is_running


async def test_no_driver_worker_stops_promptly_too() -> None:
    app = GaugesHost(FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND))
    async with app.run_test(size=(80, 10)) as pilot:
        await until(pilot, lambda: app.updates)
        await gauges(app).remove()
        await until(pilot, lambda: not sampler_threads(), timeout=2.0)


async def test_snapshots_are_coalesced() -> None:
    nv = two_gpus()
    sampler = Sampler(nv, names=names)
    snaps = [sampler.sample_once() for _ in range(5)]
    app = GaugesHost(None)
    async with app.run_test(size=(120, 12)) as pilot:

        def feed() -> None:
            for snap in snaps:
                gauges(app).deliver(snap)

        feeder = threading.Thread(target=feed)
        feeder.start()
        feeder.join()
        await until(pilot, lambda: app.updates)
        await pilot.pause()
        assert len(app.updates) == 1
        assert app.updates[0].snapshot is snaps[-1]
        assert gauges(app).snapshot is snaps[-1]


async def test_a_failing_sampler_factory_is_a_state() -> None:
    def broken(interval: float) -> Sampler:
        raise RuntimeError("no sampler today")

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield GpuGauges(sampler_factory=broken)

    app = Host()
    async with app.run_test(size=(80, 10)) as pilot:
        await until(pilot, lambda: gauges(app).snapshot is not None)
        assert "RuntimeError: no sampler today" in str(state_line(app).render())
        assert app.is_running


async def test_many_gpus_wrap_at_80_columns() -> None:
    snap = Sampler(FakeNvml([FakeDevice() for _ in range(4)]), names=names).sample_once()
    app = GaugesHost(None)
    async with app.run_test(size=(80, 24)) as pilot:
        gauges(app).snapshot = snap
        await until(pilot, lambda: len(blocks(app)) == 4)
        await pilot.pause()
        assert gauges(app).has_class("-cols-2")
        regions = [b.region for b in blocks(app)]
        assert {r.x for r in regions} == {0, 40}  # two a row, as wide as the screen allows
        assert len({r.y for r in regions}) == 2
        assert all(r.width >= 39 for r in regions)


def test_columns_for() -> None:
    assert columns_for(120, 2) == 2
    assert columns_for(80, 2) == 2
    assert columns_for(80, 4) == 2
    assert columns_for(60, 2) == 1
    assert columns_for(200, 8) == 4
    assert columns_for(10, 1) == 1


def test_spark_is_scaled_absolutely_and_right_aligned() -> None:
    assert spark([0, 50, 100], 100, 5) == "  ▁▅█"
    assert spark([70, 70.1, 70], 100, 3) == "▆▆▆"  # no sawtooth from tiny moves
    assert spark([None, 100], 100, 2) == " █"
    assert spark(list(range(100)), 100, 10)[-1] == "█"
    assert len(spark(list(range(240)), 240, 17)) == 17
    assert spark([1, 2], 0, 2) == "  "
    assert spark([1], 1, 0) == ""


def test_process_lines_sum_those_that_do_not_fit() -> None:
    procs = [FakeProc(pid, (pid - 400) * GiB) for pid in range(401, 406)]
    nv = FakeNvml([FakeDevice(processes=procs)])
    sample = Sampler(nv, names=names).sample_once().devices[0]
    lines = process_lines(sample, {401: "chat"}, rows=3)
    assert lines[0] == ("● 401 chat · ?", "1.0 GiB", True)
    assert lines[1] == ("  405 ?", "5.0 GiB", False)
    assert lines[2] == ("  + 3 more", "9.0 GiB", False)


def test_memory_summary() -> None:
    assert memory_summary(None) == ""
    snap = Sampler(two_gpus(), names=names).sample_once()
    assert memory_summary(snap) == "GPU 16.5/104 GiB"
    assert memory_summary(GpuSnapshot(0.0, GpuState.ERROR, "NVML: x")) == ""


async def test_brackets_in_names_are_not_markup() -> None:
    nv = FakeNvml([FakeDevice(name="NVIDIA [bold]H100[/bold]")])
    app = GaugesHost(nv)
    async with app.run_test(size=(80, 10)) as pilot:
        await until(pilot, lambda: blocks(app) and blocks(app)[0].sample is not None)
        title = blocks(app)[0]._border_title
        assert title is not None and title.plain == "GPU 0 · NVIDIA [bold]H100[/bold]"


async def test_quitting_the_app_stops_the_worker_thread() -> None:
    nv = two_gpus()
    app = GaugesHost(nv)
    async with app.run_test(size=(120, 12)) as pilot:
        await until(pilot, lambda: app.updates)
    deadline = time.monotonic() + 2.0
    while sampler_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not sampler_threads()
    assert nv.initialised == 0
