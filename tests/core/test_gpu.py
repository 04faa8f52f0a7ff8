"""The NVML sampler and memory ownership, driven by the stand-in NVML module."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import pynvml
import pytest
from tests.fakes import fake_nvml
from tests.fakes.fake_nvml import FakeDevice, FakeNvml, FakeProc

from vllm_console.core.gpu import nvml as gpu_module
from vllm_console.core.gpu.nvml import (
    MIN_INTERVAL,
    GpuProcess,
    GpuSample,
    GpuSnapshot,
    GpuState,
    Sampler,
    probe,
)
from vllm_console.core.gpu.owners import (
    Attribution,
    Release,
    ReleaseWatch,
    Rest,
    Share,
    attribute,
    await_memory_released,
    check_released,
    holders,
    is_vllm,
    leftover_holders,
    owner_totals,
)

GiB = 1 << 30
NAMES = {
    100: ("VLLM::EngineCore", "VLLM::EngineCore"),
    101: ("VLLM::Worker_TP0", "VLLM::Worker_TP0"),
    200: ("python3", "python3 train.py"),
    300: ("python", "python -m vllm.entrypoints.openai.api_server --model x"),
}


def names(pid: int) -> tuple[str | None, str | None]:
    return NAMES.get(pid, (None, None))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def two_gpus() -> FakeNvml:
    return FakeNvml(
        [
            FakeDevice(
                used=16 * GiB,
                util_gpu=87,
                util_memory=40,
                temperature=61,
                power_mw=312_500,
                processes=[FakeProc(100, 14 * GiB), FakeProc(200, GiB)],
                graphics=[FakeProc(200, GiB)],
            ),
            FakeDevice(name="NVIDIA L4", uuid="GPU-1", total=24 * GiB, used=GiB // 2),
        ]
    )


def sampler(nv: FakeNvml, clock: Clock | None = None, **kw: float) -> Sampler:
    clock = clock or Clock()
    return Sampler(nv, names=names, clock=clock, wall=lambda: 1.7e9, **kw)


def test_the_fake_speaks_pynvml() -> None:
    fake = [n for n in dir(FakeNvml) if n.startswith(("nvml", "NVML"))]
    missing = [n for n in fake if not hasattr(pynvml, n)]
    assert not missing, f"names the real pynvml lacks: {missing}"
    for name in ("NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_LIBRARY_NOT_FOUND"):
        assert getattr(fake_nvml, name) == getattr(pynvml, name)
    assert str(fake_nvml.NVMLError(12)) == str(pynvml.NVMLError(12))
    assert isinstance(fake_nvml.NVMLError(3), fake_nvml.NVMLError_NotSupported)


def test_this_machine_without_a_driver_is_a_state() -> None:
    snap = Sampler().sample_once()
    if snap.state is GpuState.OK:
        pytest.skip("this machine has an NVIDIA driver")
    assert snap.state in (GpuState.NO_DRIVER, GpuState.NO_GPU) and not snap.available
    assert snap.reason and snap.devices == ()


@pytest.mark.parametrize(
    ("code", "state", "words"),
    [
        (fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND, GpuState.NO_DRIVER, "Shared Library Not Found"),
        (fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED, GpuState.NO_DRIVER, "Driver Not Loaded"),
        (fake_nvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, GpuState.ERROR, "version mismatch"),
    ],
)
def test_init_failures_carry_nvml_reason(code: int, state: GpuState, words: str) -> None:
    nv = FakeNvml(init_error=code)
    snap = sampler(nv).sample_once()
    assert snap.state is state and words in snap.reason and not snap.available
    assert snap.to_json()["available"] is False and nv.calls["nvmlShutdown"] == 0


def test_driver_without_gpus() -> None:
    snap = sampler(FakeNvml([])).sample_once()
    assert snap.state is GpuState.NO_GPU and snap.driver == "550.54.15"
    assert "no GPU" in snap.reason


def test_a_full_sample() -> None:
    nv = two_gpus()
    snap = sampler(nv).sample_once()
    assert snap.available and snap.driver == "550.54.15" and nv.initialised == 0
    first, second = snap.devices
    assert first.name == "NVIDIA H100 80GB HBM3" and first.memory_used == 16 * GiB
    assert first.memory_free == 64 * GiB and first.memory_fraction == pytest.approx(0.2)
    assert (first.util_gpu, first.util_memory, first.temperature_c) == (87, 40, 61)
    assert first.power_w == 312.5 and first.power_limit_w == 700.0
    assert first.processes_known
    # a PID in both the compute and the graphics list shows once
    assert first.processes == (
        GpuProcess(100, 14 * GiB, "VLLM::EngineCore", "VLLM::EngineCore"),
        GpuProcess(200, GiB, "python3", "python3 train.py"),
    )
    assert second.name == "NVIDIA L4" and second.processes == () and second.processes_known
    assert json.loads(json.dumps(snap.to_json()))["gpus"][0]["processes"][0]["pid"] == 100


def test_unsupported_fields_are_na() -> None:
    dev = FakeDevice(
        unsupported={
            "nvmlDeviceGetPowerUsage",
            "nvmlDeviceGetTemperature",
            "nvmlDeviceGetUtilizationRates",
            "nvmlDeviceGetEnforcedPowerLimit",
            "nvmlDeviceGetPowerManagementLimit",
            "nvmlDeviceGetComputeRunningProcesses",
            "nvmlDeviceGetGraphicsRunningProcesses",
        }
    )
    sample = sampler(FakeNvml([dev])).sample_once().devices[0]
    assert sample.memory_total == 80 * GiB and sample.error is None
    assert None is sample.power_w is sample.power_limit_w is sample.temperature_c
    assert sample.util_gpu is None and not sample.processes_known
    assert sample.power_text() == "N/A / N/A W"


def test_power_limit_falls_back_and_process_list_mismatch_is_soft() -> None:
    dev = FakeDevice(
        unsupported={"nvmlDeviceGetEnforcedPowerLimit"},
        mismatch={"nvmlDeviceGetComputeRunningProcesses"},
        graphics=[FakeProc(7, None)],
    )
    sample = sampler(FakeNvml([dev])).sample_once().devices[0]
    assert sample.power_limit_w == 700.0
    assert sample.processes_known and sample.processes == (GpuProcess(7, None),)


def test_a_lost_gpu_does_not_hide_the_others() -> None:
    nv = two_gpus()
    nv.devices[0].lost = True
    snap = sampler(nv).sample_once()
    assert snap.available and snap.devices[0].error == "NVML: GPU is lost"
    assert snap.devices[1].name == "NVIDIA L4"


def test_count_failing_is_an_error_state(monkeypatch: pytest.MonkeyPatch) -> None:
    nv = two_gpus()

    def broken() -> int:
        raise fake_nvml.NVMLError(fake_nvml.NVML_ERROR_UNKNOWN)

    monkeypatch.setattr(nv, "nvmlDeviceGetCount", broken)
    snap = sampler(nv).sample_once()
    assert snap.state is GpuState.ERROR and "Unknown Error" in snap.reason


def test_interval_is_clamped() -> None:
    assert Sampler(FakeNvml(), interval=0.01).interval == MIN_INTERVAL
    assert Sampler(FakeNvml(), interval=1.5).interval == 1.5


def test_processes_every_two_seconds_devices_every_tick() -> None:
    nv, clock = two_gpus(), Clock()
    s = sampler(nv, clock)
    assert s.open() is None
    seen = []
    for step in range(5):  # t = 0, 0.5, 1.0, 1.5, 2.0
        if step == 1:
            nv.devices[0].processes = [FakeProc(101, 3 * GiB)]
            nv.devices[0].graphics = []
        nv.devices[0].used = (16 + step) * GiB
        snap = s.tick()
        seen.append((snap.devices[0].memory_used, [p.pid for p in snap.devices[0].processes]))
        clock.sleep(0.5)
    s.close()
    assert nv.calls["nvmlDeviceGetComputeRunningProcesses"] == 2 * 2  # 2 reads x 2 devices
    assert [m for m, _ in seen] == [(16 + i) * GiB for i in range(5)]
    assert [p for _, p in seen] == [[100, 200]] * 4 + [[101]]  # carried between reads


def test_history_is_a_bounded_ring() -> None:
    nv, clock = two_gpus(), Clock()
    s = sampler(nv, clock, history_seconds=2.0)
    s.open()
    for step in range(10):
        nv.devices[1].util_gpu = step
        snap = s.tick()
        clock.sleep(0.5)
    s.close()
    ring = s.history(1)
    assert len(ring) == 4 and [p.util_gpu for p in ring] == [6, 7, 8, 9]
    assert snap.history[1] == ring and ring[-1].memory_used == GiB // 2
    assert s.history(5) == ()


def run_until(s: Sampler, count: int) -> list[GpuSnapshot]:
    got: list[GpuSnapshot] = []
    stop = threading.Event()

    def on_snapshot(snap: GpuSnapshot) -> None:
        got.append(snap)
        if len(got) >= count:
            stop.set()

    worker = threading.Thread(target=s.run, args=(stop, on_snapshot))
    worker.start()
    worker.join(10)
    assert not worker.is_alive()
    return got


def test_run_loop_on_a_thread() -> None:
    nv = two_gpus()
    got = run_until(Sampler(nv, names=names, interval=0.25), 3)
    assert len(got) == 3 and all(g.available for g in got)
    assert len(got[-1].history[0]) == 3 and nv.initialised == 0


def test_run_loop_without_a_driver_reports_once_and_waits() -> None:
    nv = FakeNvml(init_error=fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    got = run_until(Sampler(nv), 1)
    assert got[0].state is GpuState.NO_DRIVER and nv.calls["nvmlInit"] == 1


def test_run_loop_survives_a_bad_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    nv = two_gpus()

    def boom(handle: object) -> object:
        raise RuntimeError("driver hiccup")

    monkeypatch.setattr(nv, "nvmlDeviceGetMemoryInfo", boom)
    got = run_until(Sampler(nv, names=names, interval=0.25), 2)
    assert [g.state for g in got] == [GpuState.ERROR] * 2
    assert "driver hiccup" in got[0].reason and nv.initialised == 0


def test_probe_keeps_working() -> None:
    found = probe(two_gpus())
    assert found.available and found.driver == "550.54.15"
    assert found.devices[0].memory_free == 64 * GiB and found.devices[1].name == "NVIDIA L4"
    missing = probe(FakeNvml(init_error=fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED))
    assert not missing.available and "Driver Not Loaded" in missing.reason


def test_real_process_names_come_from_proc() -> None:
    me = os.getpid()
    nv = FakeNvml([FakeDevice(processes=[FakeProc(me, GiB)])])
    proc = Sampler(nv).sample_once().devices[0].processes[0]
    assert proc.name and proc.command and proc.pid == me


# -- whose memory ----------------------------------------------------------------------------


def snapshot(*devices: GpuSample) -> GpuSnapshot:
    return GpuSnapshot(0.0, GpuState.OK, "ok", "550", devices)


def dev(index: int, used_gib: float, *procs: GpuProcess) -> GpuSample:
    used = int(used_gib * GiB)
    return GpuSample(
        index, "GPU", None, 80 * GiB, used, 80 * GiB - used, processes=procs, processes_known=True
    )


def proc(pid: int, gib: float | None) -> GpuProcess:
    name, command = names(pid)
    return GpuProcess(pid, int(gib * GiB) if gib is not None else None, name, command)


def test_shares_by_process() -> None:
    snap = snapshot(dev(0, 20, proc(100, 14), proc(101, 2), proc(200, 1)), dev(1, 3, proc(200, 2)))
    first, second = attribute(snap, {"chat": {100, 101}})
    assert first.shares == (Share("chat", 16 * GiB, Attribution.BY_PROCESS, (100, 101)),)
    assert first.rest == 4 * GiB and first.rest_kind is Rest.NOT_OURS
    assert first.owner_of() == {100: "chat", 101: "chat"} and first.shares[0].amount() == "16.0 GiB"
    assert second.shares == () and second.rest == 3 * GiB


def test_two_servers_on_one_gpu_and_one_server_on_two() -> None:
    snap = snapshot(
        dev(0, 20, proc(100, 12), proc(101, 2), proc(102, 3), proc(200, 2)),
        dev(1, 9, proc(103, 8)),
    )
    gpus = attribute(snap, {"chat": {100, 101, 103}, "embed": {102}})
    assert [(s.owner, s.used) for s in gpus[0].shares] == [("chat", 14 * GiB), ("embed", 3 * GiB)]
    assert gpus[0].rest == 3 * GiB and gpus[0].ours == 17 * GiB
    assert [(s.owner, s.used) for s in gpus[1].shares] == [("chat", 8 * GiB)]
    assert owner_totals(gpus) == {"chat": 22 * GiB, "embed": 3 * GiB}


def test_a_pid_counts_once() -> None:
    twice = GpuSample(
        0,
        "GPU",
        None,
        80 * GiB,
        20 * GiB,
        60 * GiB,
        processes=(proc(100, 4), proc(100, 4)),
        processes_known=True,
    )
    (gpu,) = attribute(snapshot(twice), {"chat": {100}, "embed": {100}})
    assert [(s.owner, s.used, s.pids) for s in gpu.shares] == [("chat", 4 * GiB, (100,))]
    assert gpu.rest == 16 * GiB


def test_shares_never_exceed_the_used_memory() -> None:
    # process lists are read every 2 s, memory every 0.5 s: a stop shows in memory first
    (gpu,) = attribute(snapshot(dev(0, 10, proc(100, 14), proc(102, 3))), {"a": {100}, "b": {102}})
    assert [s.used for s in gpu.shares] == [10 * GiB, 0] and gpu.rest == 0


def test_shares_by_change_since_launch_when_pids_do_not_match() -> None:
    baseline = snapshot(dev(0, 1), dev(1, 3))
    now = snapshot(dev(0, 15.5, proc(48213, 14)), dev(1, 2.5))  # host PIDs, as in a container
    first, second = attribute(now, {"chat": {100}}, {"chat": baseline})
    assert first.shares == (Share("chat", int(14.5 * GiB), Attribution.BY_CHANGE),)
    assert first.rest == GiB and first.rest_kind is Rest.NOT_OURS
    assert first.shares[0].amount() == "14.5 GiB since launch"
    assert second.shares[0].used == 0 and second.rest == int(2.5 * GiB)
    blind = attribute(now, {"chat": {100}})
    assert blind[0].shares == () and blind[0].rest_kind is Rest.UNATTRIBUTED
    assert blind[0].rest == int(15.5 * GiB)


def test_by_change_with_other_servers_leaves_the_rest_unattributed() -> None:
    baseline = snapshot(dev(0, 9))  # embed was there already
    now = snapshot(dev(0, 23, proc(48213, 14)))
    # only chat is starting: the growth is its own; the rest may be embed's or anyone's
    (gpu,) = attribute(now, {"embed": {102}, "chat": {100}}, {"chat": baseline})
    assert [(s.owner, s.used) for s in gpu.shares] == [("chat", 14 * GiB)]
    assert gpu.rest == 9 * GiB and gpu.rest_kind is Rest.UNATTRIBUTED
    # two starting: the growth cannot be split
    both = attribute(now, {"embed": {102}, "chat": {100}}, {"chat": baseline, "embed": baseline})
    assert both[0].shares == () and both[0].rest == 23 * GiB
    assert both[0].rest_kind is Rest.UNATTRIBUTED


def test_shares_when_nvml_hides_per_process_memory() -> None:
    (gpu,) = attribute(snapshot(dev(0, 20, proc(100, None))), {"chat": {100}})
    assert gpu.shares[0].used is None and gpu.shares[0].how is Attribution.BY_PROCESS
    assert gpu.rest is None  # the hidden amount is in it: not known
    assert owner_totals([gpu]) == {"chat": None}


def test_shares_without_servers_are_all_not_ours() -> None:
    (gpu,) = attribute(snapshot(dev(0, 3, proc(200, 2))), {})
    assert gpu.shares == () and gpu.rest == 3 * GiB and gpu.rest_kind is Rest.NOT_OURS


def test_memory_released_after_a_stop() -> None:
    clock = Clock()
    snaps = iter(
        [
            snapshot(dev(0, 16, proc(100, 14), proc(200, 1))),
            snapshot(dev(0, 16, proc(100, 14), proc(200, 1))),
            snapshot(dev(0, 2, proc(200, 1))),
        ]
    )
    left = await_memory_released(lambda: next(snaps), {100}, sleep=clock.sleep, clock=clock)
    assert left == [] and clock.now == pytest.approx(1001.0)


def test_memory_still_held_names_the_pid() -> None:
    clock = Clock()
    stuck = snapshot(dev(0, 16, proc(101, 14)))
    left = await_memory_released(lambda: stuck, {100, 101}, sleep=clock.sleep, clock=clock)
    assert clock.now == pytest.approx(1010.0)
    assert [(h.pid, h.used, h.gpu) for h in left] == [(101, 14 * GiB, 0)]
    assert left[0].describe() == "VLLM::Worker_TP0 (pid 101) holds 14.0 GiB on GPU 0"


def test_memory_held_without_visible_pids_uses_the_baseline() -> None:
    baseline = snapshot(dev(0, 1))
    later = snapshot(dev(0, 9))
    left = holders(later, {100}, baseline)
    assert left[0].pid is None and left[0].used == 8 * GiB
    assert "not returned since launch" in left[0].describe()
    assert holders(snapshot(dev(0, 1.1)), {100}, baseline) == []  # within the noise


def test_release_through_a_sampler_and_without_a_gpu() -> None:
    nv, clock = two_gpus(), Clock()
    left = await_memory_released(sampler(nv), {100}, timeout=1, sleep=clock.sleep, clock=clock)
    assert [h.pid for h in left] == [100] and nv.initialised == 0
    none = FakeNvml(init_error=fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    assert await_memory_released(sampler(none), {100}) == []


def test_release_watch_is_fed_snapshots() -> None:
    watch = ReleaseWatch(frozenset({100}), None, started=50.0, timeout=10.0)
    held = snapshot(dev(0, 16, proc(100, 14)))
    waiting = watch.check(held, 55.0)
    assert waiting.state is Release.WAITING and [h.pid for h in waiting.holders] == [100]
    late = watch.check(held, 60.0)
    assert late.state is Release.HELD and late.after == pytest.approx(10.0)
    done = watch.check(snapshot(dev(0, 2)), 57.5)
    assert done.state is Release.RELEASED and done.holders == () and done.after == 7.5
    blind = GpuSnapshot(0.0, GpuState.NO_DRIVER, "NVML Shared Library Not Found")
    assert watch.check(blind, 51.0).state is Release.NO_GPU


def test_check_released_after_a_headless_stop() -> None:
    nv = two_gpus()
    held = check_released({100}, sampler=sampler(nv), timeout=0.6)
    assert held is not None and [h.pid for h in held] == [100] and nv.initialised == 0
    assert check_released({4242}, sampler=sampler(nv), timeout=0.6) == []  # not on a GPU
    none = FakeNvml(init_error=fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    assert check_released({100}, sampler=sampler(none)) is None  # no GPU: nothing to check


def test_leftover_vllm_processes_are_pointed_out() -> None:
    snap = snapshot(dev(0, 30, proc(100, 14), proc(200, 1), proc(300, 12)), dev(1, 1))
    left = leftover_holders(snap)
    assert [h.pid for h in left] == [100, 300]
    assert [h.pid for h in leftover_holders(snap, exclude={100})] == [300]


@pytest.mark.parametrize(
    ("name", "command", "expected"),
    [
        ("VLLM::EngineCore", "", True),
        ("vllm", "/opt/venv/bin/python3 /opt/venv/bin/vllm serve m", True),
        ("python3", "python3 -m vllm.entrypoints.openai.api_server", True),
        ("python3", "python3 train.py --out vllm", False),
        (None, None, False),
    ],
)
def test_is_vllm(name: str | None, command: str | None, expected: bool) -> None:
    assert is_vllm(GpuProcess(1, None, name, command)) is expected


# -- scripts/gpu_check.py, its logic against the stand-in (the real run needs a GPU) ----------


def load_gpu_check() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_without_a_gpu_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    check = load_gpu_check()
    nv = FakeNvml(init_error=fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    monkeypatch.setattr(gpu_module, "_load_default", lambda: nv)
    assert check.main([]) == 2


def test_gpu_check_passes_when_memory_comes_and_goes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    check = load_gpu_check()
    nv = FakeNvml([FakeDevice(used=GiB)])
    monkeypatch.setattr(gpu_module, "_load_default", lambda: nv)
    monkeypatch.setattr(check, "have_torch", lambda: True)
    held = 2 * GiB + GiB // 2  # the allocation and the child's CUDA context

    def start_child(gib: float, device: int, timeout: float) -> tuple[object, str]:
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.readline()"],
            stdin=subprocess.PIPE,
            text=True,
        )
        nv.devices[device].used += held
        nv.devices[device].processes = [FakeProc(child.pid, held)]

        def reap() -> None:
            child.wait()
            nv.devices[device].used -= held
            nv.devices[device].processes = []

        threading.Thread(target=reap, daemon=True).start()
        return child, str(2 * GiB)

    monkeypatch.setattr(check, "start_child", start_child)
    assert check.main(["--gib", "2", "--interval", "0.25"]) == 0
    out = capsys.readouterr().out
    assert out.count("[PASS]") == 5 and "RESULT: PASS" in out, out
