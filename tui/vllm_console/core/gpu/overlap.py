"""A launch beside the fleet's other servers: the memory they hold counted as taken.

NVML's free memory already leaves out what a running server holds, but one that is still
starting holds less than it will: vLLM takes gpu_memory_utilization x total of each GPU once
its engine is up. `FleetContext.held` is what the other servers hold on each GPU, so a GPU
offers a new launch the smaller of NVML's free memory and its total less that (`beside`: no
memory is counted twice). A launch fits beside them only if held + utilization x total <=
total; where it does not, `overlaps` names the GPU and how much is missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vllm_console.core.gpu.verdict import DEFAULT_UTILIZATION, GiB, GpuMemory


@dataclass(frozen=True)
class SharedGpu:
    """A GPU as a new launch sees it: its free memory less what the other servers hold."""

    index: int
    memory_total: int | None
    memory_free: int | None
    held: int = 0  # bytes the other servers hold, or will


def beside(gpus: Sequence[GpuMemory], held: Mapping[int, int]) -> list[SharedGpu]:
    """`gpus` with the free memory the other servers leave: min(free, total - held)."""
    shared = []
    for gpu in gpus:
        taken = max(0, held.get(gpu.index, 0))
        total, free = gpu.memory_total, gpu.memory_free
        if taken and total is not None and free is not None:
            free = max(0, min(free, total - taken))
        shared.append(SharedGpu(gpu.index, total, free, taken))
    return shared


@dataclass(frozen=True)
class Overlap:
    """A GPU another server holds memory on, where this launch will not fit beside it."""

    index: int
    held: int
    wanted: int  # utilization x total: what vLLM takes
    left: int  # what the GPU has left for it

    @property
    def missing(self) -> int:
        return max(0, self.wanted - self.left)

    def describe(self) -> str:
        return (
            f"GPU {self.index}: other servers hold {_gib(self.held)}, this launch takes "
            f"{_gib(self.wanted)}: {_gib(self.missing)} missing"
        )


def _gib(n: int) -> str:
    return f"{n / GiB:.1f} GiB"


def overlaps(
    gpus: Sequence[GpuMemory], held: Mapping[int, int], utilization: float | None
) -> list[Overlap]:
    """The GPUs among `gpus` (the launch's) that another server shares and that cannot give
    this launch utilization x total; vLLM refuses to start on them."""
    util = utilization or DEFAULT_UTILIZATION
    found = []
    for gpu in beside(gpus, held):
        if not gpu.held or not gpu.memory_total or gpu.memory_free is None:
            continue
        if util > gpu.memory_free / gpu.memory_total:  # as `check_fit` judges it
            wanted = math.ceil(gpu.memory_total * util)
            found.append(Overlap(gpu.index, gpu.held, wanted, gpu.memory_free))
    return found
