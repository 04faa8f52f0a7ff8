"""A stand-in for the `pynvml` module (nvidia-ml-py) with settable state, for sampler tests.

It exposes the functions and names the console calls, with pynvml's signatures and error
classes: `NVMLError(value)` maps to the `NVMLError_*` subclass as pynvml's does, and the
messages are pynvml's. State is plain attributes: `devices` (a list of `FakeDevice`),
`init_error` (an error code that `nvmlInit` raises, e.g. `NVML_ERROR_LIBRARY_NOT_FOUND`), and
per device the fields it does not support (`unsupported`: function names), `mismatch`
(functions that raise pynvml's library-mismatch error) and `lost`.
`calls` counts each function called, so tests can see how often process lists were read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

GiB = 1 << 30

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_UNKNOWN = 999
NVML_TEMPERATURE_GPU = 0

_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: "RM has detected an NVML/RM version mismatch.",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    _by_value: dict[int, type[NVMLError]] = {}
    value: int

    def __new__(cls, value: int = NVML_ERROR_UNKNOWN) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._by_value.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value: int = NVML_ERROR_UNKNOWN) -> None:
        super().__init__(value)

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML Error with code {self.value}")


def _subclass(name: str, value: int) -> type[NVMLError]:
    def new(cls: type[NVMLError], *_args: object) -> NVMLError:
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    cls = type(name, (NVMLError,), {"__new__": new, "__init__": lambda self, *a: None})
    NVMLError._by_value[value] = cls
    return cls


NVMLError_Uninitialized = _subclass("NVMLError_Uninitialized", NVML_ERROR_UNINITIALIZED)
NVMLError_NotSupported = _subclass("NVMLError_NotSupported", NVML_ERROR_NOT_SUPPORTED)
NVMLError_NoPermission = _subclass("NVMLError_NoPermission", NVML_ERROR_NO_PERMISSION)
NVMLError_DriverNotLoaded = _subclass("NVMLError_DriverNotLoaded", NVML_ERROR_DRIVER_NOT_LOADED)
NVMLError_LibraryNotFound = _subclass("NVMLError_LibraryNotFound", NVML_ERROR_LIBRARY_NOT_FOUND)
NVMLError_FunctionNotFound = _subclass("NVMLError_FunctionNotFound", NVML_ERROR_FUNCTION_NOT_FOUND)
NVMLError_GpuIsLost = _subclass("NVMLError_GpuIsLost", NVML_ERROR_GPU_IS_LOST)
NVMLError_LibRmVersionMismatch = _subclass(
    "NVMLError_LibRmVersionMismatch", NVML_ERROR_LIB_RM_VERSION_MISMATCH
)


class NVMLLibraryMismatchError(Exception):
    """pynvml raises this (not an NVMLError) for an unversioned call the driver lacks."""


@dataclass
class FakeProc:
    pid: int
    usedGpuMemory: int | None


@dataclass
class FakeDevice:
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    total: int = 80 * GiB
    used: int = 1 * GiB
    util_gpu: int = 0
    util_memory: int = 0
    temperature: int = 35
    power_mw: int = 70_000
    power_limit_mw: int = 700_000
    processes: list[FakeProc] = field(default_factory=list)
    graphics: list[FakeProc] = field(default_factory=list)
    unsupported: set[str] = field(default_factory=set)
    mismatch: set[str] = field(default_factory=set)  # pynvml's library-mismatch error
    lost: bool = False


@dataclass(frozen=True)
class _Handle:
    index: int


class FakeNvml:
    """Module-like: pass an instance where the console expects the `pynvml` module."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NoPermission = NVMLError_NoPermission
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    NVMLError_GpuIsLost = NVMLError_GpuIsLost
    NVMLError_Uninitialized = NVMLError_Uninitialized
    NVMLError_LibRmVersionMismatch = NVMLError_LibRmVersionMismatch
    NVMLLibraryMismatchError = NVMLLibraryMismatchError
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU

    def __init__(
        self,
        devices: list[FakeDevice] | None = None,
        *,
        init_error: int | None = None,
        driver: str = "550.54.15",
    ) -> None:
        self.devices = list(devices or [])
        self.init_error = init_error
        self.driver = driver
        self.initialised = 0
        self.calls: Counter[str] = Counter()

    # -- library ---------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] += 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.calls["nvmlShutdown"] += 1
        self._check_init()
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check_init()
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        self._check_init()
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._check_init()
        if not 0 <= index < len(self.devices):
            raise NVMLError(2)  # invalid argument
        if self.devices[index].lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        return _Handle(index)

    # -- per-device fields -----------------------------------------------------------------
    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        return self._dev(handle, "nvmlDeviceGetName").name

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        return self._dev(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle, version: Any = None) -> SimpleNamespace:
        dev = self._dev(handle, "nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(total=dev.total, used=dev.used, free=max(0, dev.total - dev.used))

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> SimpleNamespace:
        dev = self._dev(handle, "nvmlDeviceGetUtilizationRates")
        return SimpleNamespace(gpu=dev.util_gpu, memory=dev.util_memory)

    def nvmlDeviceGetTemperature(self, handle: _Handle, sensor: int) -> int:
        if sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError(2)
        return self._dev(handle, "nvmlDeviceGetTemperature").temperature

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        return self._dev(handle, "nvmlDeviceGetPowerUsage").power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:
        return self._dev(handle, "nvmlDeviceGetEnforcedPowerLimit").power_limit_mw

    def nvmlDeviceGetPowerManagementLimit(self, handle: _Handle) -> int:
        return self._dev(handle, "nvmlDeviceGetPowerManagementLimit").power_limit_mw

    def nvmlDeviceGetComputeRunningProcesses(self, handle: _Handle) -> list[FakeProc]:
        dev = self._dev(handle, "nvmlDeviceGetComputeRunningProcesses")
        return [FakeProc(p.pid, p.usedGpuMemory) for p in dev.processes]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: _Handle) -> list[FakeProc]:
        dev = self._dev(handle, "nvmlDeviceGetGraphicsRunningProcesses")
        return [FakeProc(p.pid, p.usedGpuMemory) for p in dev.graphics]

    # -- helpers ---------------------------------------------------------------------------
    def _check_init(self) -> None:
        if self.initialised <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _dev(self, handle: _Handle, fn: str) -> FakeDevice:
        self.calls[fn] += 1
        self._check_init()
        dev = self.devices[handle.index]
        if dev.lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        if fn in dev.mismatch:
            raise NVMLLibraryMismatchError(f"{fn}: use a versioned function")
        if fn in dev.unsupported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return dev
