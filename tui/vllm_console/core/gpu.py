"""The GPUs through NVML (`nvidia-ml-py`, imported as `pynvml`).

No driver, no library or no device is a state with NVML's own reason, never an exception:
everything else in the console keeps working without a GPU (a CPU-only vLLM included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe() -> GpuProbe:
    """One look at the GPUs: their names and memory, or why there are none."""
    try:
        import pynvml
    except ImportError:
        return GpuProbe(False, "nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return GpuProbe(False, f"NVML: {exc}")
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        devices = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = _text(pynvml.nvmlDeviceGetName(handle))
            devices.append(GpuBrief(index, name, int(memory.total), int(memory.used)))
    except pynvml.NVMLError as exc:
        return GpuProbe(False, f"NVML: {exc}")
    finally:
        pynvml.nvmlShutdown()
    if not devices:
        return GpuProbe(False, "the NVIDIA driver reports no GPU", driver)
    return GpuProbe(True, f"{len(devices)} GPU(s)", driver, tuple(devices))
