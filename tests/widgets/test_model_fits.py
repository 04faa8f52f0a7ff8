"""The fit column's bookkeeping: when verdicts are worked out again, and stale ones dropped."""

from __future__ import annotations

from typing import Any

from tests.core.test_fit import entry_for
from tests.fakes.fake_nvml import FakeDevice, FakeNvml
from vllm_console.core.gpu.nvml import Sampler
from vllm_console.widgets.models.fits import FIT_MEMORY_STEP, GpuFits, work_out_fits

GiB = 1 << 30


def snapshot(used: int, total: int = 24 * GiB) -> Any:
    return Sampler(FakeNvml([FakeDevice(total=total, used=used)])).sample_once()


def test_worked_out_again_only_when_free_memory_moves_a_step() -> None:
    fits = GpuFits()
    assert fits.follow(snapshot(GiB)) and fits.generation == 1
    assert not fits.follow(snapshot(GiB + FIT_MEMORY_STEP // 2))  # a small move: same verdicts
    assert fits.follow(snapshot(GiB + FIT_MEMORY_STEP)) and fits.generation == 2
    assert fits.follow(snapshot(GiB, total=80 * GiB))  # another GPU
    assert fits.follow(None) and fits.gpus is None and fits.fits == {}
    assert not fits.follow(None)


def test_verdicts_of_an_older_generation_are_dropped() -> None:
    fits = GpuFits()
    fits.follow(snapshot(GiB))
    entry = entry_for("qwen2.5-7b-instruct")
    job = fits.job([entry, entry_for("llama-3.1-8b-instruct", detailed=False)], None, 0.9, None)
    assert job is not None and [e.key for e in job.entries] == [entry.key]  # detailed only
    verdicts = work_out_fits(job)
    assert str(verdicts[entry.key].verdict) == "fits"
    fits.follow(snapshot(20 * GiB))  # the GPUs moved on before the worker came back
    assert not fits.worked_out(job.generation, verdicts)
    assert entry.key not in fits.fits
    current = fits.job([entry], None, 0.9, None)
    assert current is not None
    before = fits.fits
    assert fits.worked_out(current.generation, work_out_fits(current))
    assert fits.fits is not before and str(fits.fits[entry.key].verdict) == "won't fit"


def test_no_job_without_gpus() -> None:
    assert GpuFits().job([entry_for("qwen2.5-7b-instruct")], None, 0.9, None) is None
