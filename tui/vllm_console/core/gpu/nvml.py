"""The GPUs through NVML (`nvidia-ml-py`, imported as `pynvml`).

No driver, no library or no device is a state with NVML's own reason, never an exception:
everything else in the console keeps working without a GPU (a CPU-only vLLM included). Every
NVML call for one field goes through `_Nvml.field`, so a field a device does not support is
None (shown "N/A"), not an error.

`Sampler.run` is the loop for a thread worker: devices every `interval` (0.5 s, never under
0.25 s: utilization is averaged over 1/6-1 s and process lists take the driver's global lock),
processes every 2 s, and a ring of about two minutes of memory and utilization per device.
What a reading is (`GpuSnapshot`, `GpuSample`, ... and their display helpers) lives in
`samples.py`; who holds the memory (ours, leftovers, released after a stop) in `owners.py`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from vllm_console.core.gpu.samples import (
    GiB,
    GpuBrief,
    GpuProbe,
    GpuProcess,
    GpuSample,
    GpuSnapshot,
    GpuState,
    HistoryPoint,
    gib_text,
    na,
)
from vllm_console.core.serve.proctable import proc_info

__all__ = [  # the readings' types too: callers import them from here
    "DEFAULT_INTERVAL",
    "MIN_INTERVAL",
    "PROCESS_INTERVAL",
    "GiB",
    "GpuBrief",
    "GpuProbe",
    "GpuProcess",
    "GpuSample",
    "GpuSnapshot",
    "GpuState",
    "HistoryPoint",
    "Sampler",
    "gib_text",
    "na",
    "probe",
    "proc_names",
]

MIN_INTERVAL = 0.25
DEFAULT_INTERVAL = 0.5
PROCESS_INTERVAL = 2.0
HISTORY_SECONDS = 120.0
RETRY_INTERVAL = 10.0  # without a driver, look again now and then, not every tick

NameLookup = Callable[[int], tuple[str | None, str | None]]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _watts(milliwatts: Any) -> float:
    return float(milliwatts) / 1000


def _maybe(value: Any, convert: Callable[[Any], Any]) -> Any:
    return None if value is None else convert(value)


def proc_names(pid: int) -> tuple[str | None, str | None]:
    info = proc_info(pid)
    return (info.name, info.cmdline) if info else (None, None)


class _Nvml:
    """The one place NVML is called: per-field failures become None."""

    def __init__(self, module: Any) -> None:
        self.m = module
        self.error: type[BaseException] = module.NVMLError
        mismatch = getattr(module, "NVMLLibraryMismatchError", None)
        self.soft: tuple[type[BaseException], ...] = (self.error, AttributeError)
        if isinstance(mismatch, type) and issubclass(mismatch, BaseException):
            self.soft += (mismatch,)

    def field(self, *names: str, args: tuple[Any, ...] = ()) -> Any:
        """The first of `names` that answers, else None (unsupported, missing, or failing)."""
        for name in names:
            try:
                return getattr(self.m, name)(*args)
            except self.soft:
                continue
        return None

    def processes(self, handle: Any, names: NameLookup) -> tuple[tuple[GpuProcess, ...], bool]:
        found: dict[int, int | None] = {}
        known = False
        for kind in ("Compute", "Graphics"):
            base = f"nvmlDeviceGet{kind}RunningProcesses"
            listed = self.field(base, base + "_v2", args=(handle,))
            if listed is None:
                continue
            known = True
            for proc in listed:
                pid, used = int(proc.pid), getattr(proc, "usedGpuMemory", None)
                used = int(used) if used is not None else None
                before = found.get(pid)
                found[pid] = used if before is None else max(before, used or 0)
        procs = tuple(GpuProcess(pid, used, *names(pid)) for pid, used in sorted(found.items()))
        return procs, known

    def device(self, index: int, with_processes: bool, names: NameLookup) -> GpuSample:
        try:
            handle = self.m.nvmlDeviceGetHandleByIndex(index)
        except self.error as exc:
            return GpuSample(index, error=f"NVML: {exc}")
        memory = self.field("nvmlDeviceGetMemoryInfo", args=(handle,))
        util = self.field("nvmlDeviceGetUtilizationRates", args=(handle,))
        sensor = getattr(self.m, "NVML_TEMPERATURE_GPU", 0)
        power = self.field("nvmlDeviceGetPowerUsage", args=(handle,))  # milliwatts
        limits = ("nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetPowerManagementLimit")
        limit = self.field(*limits, args=(handle,))
        procs, known = self.processes(handle, names) if with_processes else ((), False)
        return GpuSample(
            index=index,
            name=_maybe(self.field("nvmlDeviceGetName", args=(handle,)), _text),
            uuid=_maybe(self.field("nvmlDeviceGetUUID", args=(handle,)), _text),
            memory_total=_maybe(memory and memory.total, int),
            memory_used=_maybe(memory and memory.used, int),
            memory_free=_maybe(memory and memory.free, int),
            util_gpu=_maybe(util and util.gpu, int),
            util_memory=_maybe(util and util.memory, int),
            temperature_c=_maybe(
                self.field("nvmlDeviceGetTemperature", args=(handle, sensor)), int
            ),
            power_w=_maybe(power, _watts),
            power_limit_w=_maybe(limit, _watts),
            processes=procs,
            processes_known=known,
        )


def _load_default() -> Any | None:
    try:
        import pynvml  # lazily: ~25 ms, and only where GPUs are looked at
    except ImportError:
        return None
    return pynvml


class Sampler:
    """Samples every GPU through NVML. `nvml` is the module (a stand-in in tests)."""

    def __init__(
        self,
        nvml: Any | None = None,
        *,
        interval: float = DEFAULT_INTERVAL,
        process_interval: float = PROCESS_INTERVAL,
        history_seconds: float = HISTORY_SECONDS,
        names: NameLookup = proc_names,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._module = nvml
        self.interval = max(MIN_INTERVAL, interval)
        self.process_interval = max(self.interval, process_interval)
        self._names = names
        self._clock = clock
        self._wall = wall
        self._nv: _Nvml | None = None
        self._opened = 0
        self._lock = threading.Lock()
        self._procs: dict[int, tuple[tuple[GpuProcess, ...], bool]] = {}
        self._procs_at: float | None = None
        self._ring = max(2, int(history_seconds / self.interval))
        self._history: dict[int, deque[HistoryPoint]] = {}

    def open(self) -> GpuSnapshot | None:
        """Initialise NVML; None when it worked, else the snapshot that says why not."""
        module = self._module if self._module is not None else _load_default()
        if module is None:
            return self._state(GpuState.NO_DRIVER, "nvidia-ml-py is not installed")
        self._module = module
        try:
            module.nvmlInit()
        except module.NVMLError as exc:
            return self._state(*_init_failure(module, exc))
        with self._lock:
            self._opened += 1
            self._nv = _Nvml(module)
        return None

    def close(self) -> None:
        with self._lock:
            nv = self._nv
            if nv is None:
                return
            self._opened -= 1
            if not self._opened:
                self._nv = None
        with contextlib.suppress(nv.error):
            nv.m.nvmlShutdown()

    def read(self, *, processes: bool = True) -> GpuSnapshot:
        """One look at every device; processes fetched now, or else the last ones seen."""
        nv = self._nv
        if nv is None:
            return self._state(GpuState.ERROR, "NVML is not initialised")
        try:
            count = int(nv.m.nvmlDeviceGetCount())
        except nv.error as exc:
            return self._state(GpuState.ERROR, f"NVML: {exc}")
        driver = nv.field("nvmlSystemGetDriverVersion")
        driver = _text(driver) if driver is not None else None
        if count == 0:
            return self._state(GpuState.NO_GPU, "the NVIDIA driver reports no GPU", driver)
        devices = [nv.device(i, processes, self._names) for i in range(count)]
        with self._lock:
            for i, dev in enumerate(devices):
                if processes and dev.error is None:
                    self._procs[dev.index] = (dev.processes, dev.processes_known)
                elif dev.error is None and dev.index in self._procs:
                    procs, known = self._procs[dev.index]
                    devices[i] = replace(dev, processes=procs, processes_known=known)
        return GpuSnapshot(self._wall(), GpuState.OK, f"{count} GPU(s)", driver, tuple(devices))

    def sample_once(self, *, processes: bool = True) -> GpuSnapshot:
        failed = self.open()
        if failed is not None:
            return failed
        try:
            return self.read(processes=processes)
        finally:
            self.close()

    def tick(self) -> GpuSnapshot:
        """A read for the loop: processes when due, and the history ring brought along."""
        now = self._clock()
        due = self._procs_at is None or now - self._procs_at >= self.process_interval - 1e-6
        snap = self.read(processes=due)
        if due and snap.state is GpuState.OK:
            self._procs_at = now
        if not snap.devices:
            return snap
        with self._lock:
            rings = []
            for dev in snap.devices:
                ring = self._history.setdefault(dev.index, deque(maxlen=self._ring))
                ring.append(HistoryPoint(now, dev.memory_used, dev.util_gpu))
                rings.append(tuple(ring))
        return replace(snap, history=tuple(rings))

    def history(self, index: int) -> tuple[HistoryPoint, ...]:
        with self._lock:
            return tuple(self._history.get(index, ()))

    def run(self, stop: threading.Event, on_snapshot: Callable[[GpuSnapshot], None]) -> None:
        """Sample until `stop` is set, calling `on_snapshot` each tick (from this thread)."""
        failed = self.open()
        try:
            while not stop.is_set():
                if failed is not None:
                    on_snapshot(failed)
                    if stop.wait(RETRY_INTERVAL):
                        return
                    failed = self.open()
                    continue
                started = self._clock()
                try:
                    snap = self.tick()
                except Exception as exc:  # a worker thread must not die of one bad tick
                    snap = self._state(GpuState.ERROR, f"{type(exc).__name__}: {exc}")
                on_snapshot(snap)
                stop.wait(max(0.0, self.interval - (self._clock() - started)))
        finally:
            if failed is None:
                self.close()

    def _state(self, state: GpuState, reason: str, driver: str | None = None) -> GpuSnapshot:
        return GpuSnapshot(self._wall(), state, reason, driver)


def _init_failure(module: Any, exc: BaseException) -> tuple[GpuState, str]:
    names = ("NVMLError_LibraryNotFound", "NVMLError_DriverNotLoaded")
    no_driver = tuple(c for c in (getattr(module, n, None) for n in names) if isinstance(c, type))
    if no_driver and isinstance(exc, no_driver):
        return GpuState.NO_DRIVER, f"no NVIDIA driver (NVML: {exc})"
    return GpuState.ERROR, f"NVML: {exc}"


def probe(nvml: Any | None = None) -> GpuProbe:
    """One look at the GPUs: their names and memory, or why there are none."""
    snap = Sampler(nvml).sample_once(processes=False)
    if snap.state is not GpuState.OK:
        return GpuProbe(False, snap.reason, snap.driver)
    devices = tuple(
        GpuBrief(d.index, d.name or "?", d.memory_total or 0, d.memory_used or 0)
        for d in snap.devices
    )
    return GpuProbe(True, snap.reason, snap.driver, devices)
