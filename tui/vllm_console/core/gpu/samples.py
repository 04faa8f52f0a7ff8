"""What a look at the GPUs gives: frozen readings and the helpers that display them.

A `GpuSnapshot` is every device at one moment, or the state that says why there are none (no
driver, no GPU, an NVML error); a `GpuSample` is one device, each field None where the device
does not report it (shown "N/A"). `GpuProbe` is the short form a one-off check returns. The
sampler that makes them is `nvml.py`; nothing here calls NVML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

GiB = 1 << 30


class GpuState(StrEnum):
    OK = "ok"
    NO_DRIVER = "no-driver"
    NO_GPU = "no-gpu"
    ERROR = "error"


@dataclass(frozen=True)
class GpuProcess:
    """One process NVML lists on a device; name and command come from /proc when visible."""

    pid: int
    used_memory: int | None
    name: str | None = None
    command: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"pid": self.pid, "name": self.name, "used_memory": self.used_memory}


@dataclass(frozen=True)
class GpuSample:
    """One device at one moment. None means the device does not report it (N/A)."""

    index: int
    name: str | None = None
    uuid: str | None = None
    memory_total: int | None = None
    memory_used: int | None = None
    memory_free: int | None = None
    util_gpu: int | None = None
    util_memory: int | None = None
    temperature_c: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    processes: tuple[GpuProcess, ...] = ()
    processes_known: bool = False
    error: str | None = None

    @property
    def memory_fraction(self) -> float | None:
        if not self.memory_total or self.memory_used is None:
            return None
        return min(1.0, self.memory_used / self.memory_total)

    def memory_text(self) -> str:
        return f"{gib_text(self.memory_used)} / {gib_text(self.memory_total)}"

    def power_text(self) -> str:
        limit = f"{self.power_limit_w:.0f}" if self.power_limit_w is not None else "N/A"
        return f"{na(self.power_w, '{:.0f}')} / {limit} W"

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "memory": dict(total=self.memory_total, used=self.memory_used, free=self.memory_free),
            "utilization": {"gpu": self.util_gpu, "memory": self.util_memory},
            "temperature_c": self.temperature_c,
            "power_w": self.power_w,
            "power_limit_w": self.power_limit_w,
            "processes": [p.to_json() for p in self.processes] if self.processes_known else None,
            "error": self.error,
        }


@dataclass(frozen=True)
class HistoryPoint:
    t: float  # monotonic seconds
    memory_used: int | None
    util_gpu: int | None


@dataclass(frozen=True)
class GpuSnapshot:
    """Every device at one moment, or the state that explains why there are none."""

    time: float
    state: GpuState
    reason: str
    driver: str | None = None
    devices: tuple[GpuSample, ...] = ()
    history: tuple[tuple[HistoryPoint, ...], ...] = field(default=(), compare=False)

    @property
    def available(self) -> bool:
        return self.state is GpuState.OK and bool(self.devices)

    def device(self, index: int) -> GpuSample | None:
        return next((d for d in self.devices if d.index == index), None)

    def to_json(self) -> dict[str, object]:
        return {
            "available": self.available,
            "state": str(self.state),
            "reason": self.reason,
            "driver": self.driver,
            "time": self.time,
            "gpus": [d.to_json() for d in self.devices],
        }


@dataclass(frozen=True)
class GpuBrief:
    index: int
    name: str
    memory_total: int
    memory_used: int

    @property
    def memory_free(self) -> int:
        return max(0, self.memory_total - self.memory_used)


@dataclass(frozen=True)
class GpuProbe:
    available: bool
    reason: str
    driver: str | None = None
    devices: tuple[GpuBrief, ...] = ()


def na(value: float | None, fmt: str = "{}") -> str:
    return "N/A" if value is None else fmt.format(value)


def gib_text(n: int | None) -> str:
    return "N/A" if n is None else f"{n / GiB:.1f} GiB"
