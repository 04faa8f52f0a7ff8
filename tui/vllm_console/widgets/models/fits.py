"""The model table's fit column: would each model, launched with the settings, fit the GPUs?

`GpuFits` follows the GPU strip's snapshots and says when the verdicts must be worked out
again: a GPU came or went, or its free memory moved by `FIT_MEMORY_STEP` or more since they
were, not on every sample. Each time it starts a new generation; `work_out_fits` is the work
itself (a `will_it_fit` per detailed model: config arithmetic, ~0.1 ms each, a tenth of a
second for a thousand models), run by the browser in a thread worker. Verdicts that come back
for an older generation are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vllm_console.core.catalog.entry import ModelEntry

if TYPE_CHECKING:
    from vllm_console.core.gpu.fit import Fit
    from vllm_console.core.gpu.nvml import GpuSample, GpuSnapshot

# The fit column is worked out again when a GPU's free memory moves by this much.
FIT_MEMORY_STEP = 256 << 20


@dataclass(frozen=True)
class FitJob:
    """What one worker works out: these entries against these GPUs, for `generation`."""

    generation: int
    entries: tuple[ModelEntry, ...]
    devices: tuple[GpuSample, ...]
    cuda_visible_devices: str | None
    gpu_memory_utilization: float | None
    max_model_len: int | None


def work_out_fits(job: FitJob) -> dict[str, Fit]:
    """The fit of each detailed entry as the settings would launch it on the visible GPUs."""
    from vllm_console.core.gpu.fit import visible_gpus, will_it_fit
    from vllm_console.core.serve.spec import LaunchSpec

    gpus = visible_gpus(job.devices, job.cuda_visible_devices)
    fits: dict[str, Fit] = {}
    for entry in job.entries:
        if not entry.detailed:
            continue
        spec = LaunchSpec(
            str(entry.path),
            gpu_memory_utilization=job.gpu_memory_utilization,
            max_model_len=job.max_model_len,
        )
        fits[entry.key] = will_it_fit(entry, spec, gpus)
    return fits


class GpuFits:
    """The GPUs the fit column follows, and its verdicts so far (by entry key)."""

    def __init__(self) -> None:
        self.gpus: GpuSnapshot | None = None  # the strip's latest, while it reports GPUs
        self.generation = 0
        self.fits: dict[str, Fit] = {}
        self._key: tuple[object, ...] = ()
        self._frees: list[int] = []  # each GPU's free memory when the fits were worked out

    def follow(self, snapshot: GpuSnapshot | None) -> bool:
        """Take the newest snapshot; True when the verdicts must be worked out again."""
        gpus = snapshot if snapshot is not None and snapshot.devices else None
        devices = gpus.devices if gpus is not None else ()
        key = tuple((d.index, d.memory_total) for d in devices)
        frees = [d.memory_free or 0 for d in devices]
        moved = any(abs(a - b) >= FIT_MEMORY_STEP for a, b in zip(frees, self._frees, strict=False))
        if key == self._key and (gpus is None) == (self.gpus is None) and not moved:
            self.gpus = gpus
            return False
        self._frees = frees
        self.gpus, self._key = gpus, key
        self.generation += 1
        if gpus is None:
            self.fits = {}  # no column to show them in
        return True

    def job(
        self,
        entries: Iterable[ModelEntry],
        cuda_visible_devices: str | None,
        gpu_memory_utilization: float | None,
        max_model_len: int | None,
    ) -> FitJob | None:
        """The work for `entries` in this generation; None without GPUs or detailed entries."""
        todo = tuple(entry for entry in entries if entry.detailed)
        if self.gpus is None or not todo:
            return None
        return FitJob(
            self.generation,
            todo,
            self.gpus.devices,
            cuda_visible_devices,
            gpu_memory_utilization,
            max_model_len,
        )

    def worked_out(self, generation: int, fits: dict[str, Fit]) -> bool:
        """Verdicts back from a worker; False (and dropped) when the GPUs moved on since.

        They join the earlier ones in a new dict: until a new generation's verdicts arrive,
        the column keeps the last ones rather than flashing "…"."""
        if generation != self.generation or self.gpus is None:
            return False
        self.fits = {**self.fits, **fits}
        return True
