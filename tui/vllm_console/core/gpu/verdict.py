"""The estimate held against the GPUs: fits, tight or won't fit, and by how much.

`fit.py` works out what a model needs (`Estimate`); `check_fit` holds that against the free
memory of the GPUs a launch would use (`visible_gpus`, as CUDA_VISIBLE_DEVICES picks them),
the way vLLM budgets it: total x gpu_memory_utilization per GPU, refused above the free
memory, and a KV cache that must hold one sequence of max model length (full-attention
layers at that length, sliding-window ones at their window plus the tokens in flight: see
`kv_bytes`). The answer is a
`Fit`: a `Verdict`, its reason in words, the largest max model length that fits and the
utilization the asked one would need.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol, TypeVar

from vllm_console.core.catalog.entry import format_params
from vllm_console.core.catalog.readers.numbers import MAX_CONTEXT

GiB = 1 << 30
DEFAULT_UTILIZATION = 0.9  # vLLM's default
NON_TORCH = GiB // 2  # vLLM's memory outside torch per GPU (CUDA context, NCCL)
BLOCK = 16  # vLLM's KV block: lengths round down to it
TIGHT_SLACK = GiB  # less KV room than this beyond one full sequence is "tight"
# vLLM's default max_num_batched_tokens for `vllm serve`: 8192 on GPUs of 70 GiB and more,
# 2048 below; with async scheduling (the default) two batches are in flight.
BIG_GPU = 70 * GiB
CONCURRENT_BATCHES = 2


class Verdict(StrEnum):
    FITS = "fits"
    TIGHT = "tight"
    WONT_FIT = "won't fit"
    NO_GPU = "no GPU"
    UNKNOWN = "unknown"


class GpuMemory(Protocol):
    """What the fit needs of a GPU: `GpuSample` and `GpuBrief` both qualify."""

    @property
    def index(self) -> int: ...
    @property
    def memory_total(self) -> int | None: ...
    @property
    def memory_free(self) -> int | None: ...


G = TypeVar("G", bound=GpuMemory)


def _names_gpu(gpu: GpuMemory, token: str) -> bool:
    if token.isdigit():
        return gpu.index == int(token)
    uuid = getattr(gpu, "uuid", None)
    return bool(token) and isinstance(uuid, str) and uuid.startswith(token)


def visible_gpus(gpus: Sequence[G], cuda_visible_devices: str | None) -> list[G]:
    """The GPUs a launch sees under CUDA_VISIBLE_DEVICES (indices or UUID prefixes), in order.

    Like CUDA, the list stops at the first entry that names no GPU ("" or "-1": none). Indices
    are NVML's (PCI order): a launch should set CUDA_DEVICE_ORDER=PCI_BUS_ID to agree.
    """
    if cuda_visible_devices is None:
        return list(gpus)
    chosen: list[G] = []
    for token in (t.strip() for t in cuda_visible_devices.split(",")):
        match = next((g for g in gpus if _names_gpu(g, token)), None)
        if match is None:
            break
        chosen.append(match)
    return chosen


@dataclass(frozen=True)
class Estimate:
    """The model's memory for one launch spec; per-GPU figures split over TP x PP GPUs."""

    params: int | None
    params_from: str  # "safetensors", "config.json", "file size", or "" when unknown
    weights_bytes: int | None
    kv_bytes_per_token: int | None  # full-attention layers, all GPUs together
    gpus_needed: int
    weights_per_gpu: int | None
    kv_per_token_per_gpu: int | None
    margin_per_gpu: int
    max_model_len: int | None  # the spec's, else the model's context length
    model_context: int | None
    notes: tuple[str, ...] = ()
    # (window, bytes per token per GPU) of the sliding-window layers: they hold at most
    # the window plus the tokens in flight
    kv_windows_per_gpu: tuple[tuple[int, int], ...] = ()
    kv_unknown: str | None = None  # why the KV cache is not estimated (a family not understood)

    def summary(self) -> str:
        weights = _gib(self.weights_bytes)
        full = self.kv_bytes_per_token
        kv = "?" if full is None else f"{full / 1024:.0f} KiB/token"
        if self.kv_windows_per_gpu:
            kv += " + sliding windows"
        return f"{format_params(self.params)} params, weights {weights}, KV cache {kv}"


def in_flight_tokens(total_memory: int) -> int:
    """Tokens scheduled but not yet freed, which a sliding-window layer keeps beyond its
    window (vLLM's `max_in_flight_tokens` with its default batch size on such a GPU)."""
    return CONCURRENT_BATCHES * (8192 if total_memory >= BIG_GPU else 2048)


def kv_bytes(est: Estimate, length: int, in_flight: int) -> int:
    """Bytes per GPU of KV cache for one sequence of `length` tokens (vLLM's
    `max_memory_usage_bytes` summed over the layers' specs)."""
    full = -(-length // BLOCK) * BLOCK * (est.kv_per_token_per_gpu or 0)
    for window, per_token in est.kv_windows_per_gpu:
        held = min(window - 1 + in_flight, length)
        full += (-(-held // BLOCK) + 1) * BLOCK * per_token
    return full


@dataclass(frozen=True)
class Fit:
    verdict: Verdict
    reason: str
    estimate: Estimate
    gpus: tuple[int, ...] = ()
    utilization: float | None = None
    max_model_len: int | None = None  # largest that fits at a utilization that can start
    utilization_needed: float | None = None  # for the estimate's max model length

    def short(self) -> str:
        return str(self.verdict)

    def lines(self) -> list[str]:
        out = [f"{self.verdict}: {self.reason}", self.estimate.summary()]
        if self.max_model_len is not None:
            out.append(f"largest max model length that fits: {self.max_model_len:,}")
        if self.utilization_needed is not None:
            beyond = " (more than the whole GPU)" if self.utilization_needed > 1 else ""
            out.append(f"utilization needed: {self.utilization_needed:.2f}{beyond}")
        return out + [f"note: {n}" for n in self.estimate.notes]


def _gib(n: float | None) -> str:
    return "?" if n is None else f"{n / GiB:.1f} GiB"


def check_fit(est: Estimate, gpus: Sequence[GpuMemory], utilization: float | None) -> Fit:
    """Fits / tight / won't fit on the first `est.gpus_needed` of `gpus` (the chosen ones)."""
    if not gpus:
        return Fit(Verdict.NO_GPU, "no GPU: only a CPU build of vLLM can run this here", est)
    if est.kv_unknown is not None:
        return Fit(Verdict.UNKNOWN, est.kv_unknown, est)
    if est.weights_per_gpu is None or est.kv_per_token_per_gpu is None:
        return Fit(Verdict.UNKNOWN, "too little is known about the model to estimate", est)
    n = est.gpus_needed
    if len(gpus) < n:
        return Fit(
            Verdict.WONT_FIT, f"needs {n} GPUs (tensor x pipeline parallel), {len(gpus)} here", est
        )
    chosen = gpus[:n]
    totals = [g.memory_total for g in chosen]
    frees = [g.memory_free for g in chosen]
    ids = tuple(g.index for g in chosen)
    if any(v is None for v in totals + frees):
        return Fit(Verdict.UNKNOWN, "the GPU does not report its memory", est, ids)
    total, free = min(v for v in totals if v is not None), min(v for v in frees if v is not None)
    return _verdict(est, ids, total, free, utilization or DEFAULT_UTILIZATION)


def _floor2(x: float) -> float:
    return math.floor(x * 100) / 100


def _verdict(est: Estimate, ids: tuple[int, ...], total: int, free: int, util: float) -> Fit:
    fixed = (est.weights_per_gpu or 0) + est.margin_per_gpu
    length = est.max_model_len or BLOCK
    in_flight = in_flight_tokens(total)
    usable = min(util, _floor2(free / total))  # vLLM will not start above free / total
    room = total * usable - fixed
    fits_len = longest_fitting(est, room, in_flight)
    seq = kv_bytes(est, length, in_flight)
    need = math.ceil((fixed + seq) / total * 100) / 100
    fit = Fit(Verdict.FITS, "", est, ids, util, fits_len or None, need)
    where = f"{_gib(free)} free of {_gib(total)} per GPU"
    if fixed >= free:
        why = f"weights {_gib(est.weights_per_gpu)} + margin {_gib(est.margin_per_gpu)} > {where}"
        return _with(fit, Verdict.WONT_FIT, why)
    if util > free / total:
        why = f"utilization {util:.2f} asks for {_gib(total * util)}, but {where}"
        if need <= usable:
            why += f"; {need:.2f} would do"
        return _with(fit, Verdict.WONT_FIT, why)
    seqs = f"{length:,} tokens"
    if room <= 0:
        why = (
            f"at utilization {util:.2f} ({_gib(total * util)}) weights "
            f"{_gib(est.weights_per_gpu)} + margin {_gib(est.margin_per_gpu)} leave no KV cache"
        )
        if need <= _floor2(free / total):
            why += f"; utilization {need:.2f} would do"
        return _with(fit, Verdict.WONT_FIT, why)
    if room < seq:
        why = f"KV cache gets {_gib(room)}, one sequence of {seqs} needs {_gib(seq)}"
        if need <= _floor2(free / total):
            why += f"; utilization {need:.2f} would do"
        return _with(fit, Verdict.WONT_FIT, why)
    slack = room - seq
    held = f"KV cache {_gib(room)} holds {room / max(seq, 1):.1f} x {seqs} at {util:.2f}"
    if slack < max(TIGHT_SLACK, 0.1 * fixed) or free - total * util < NON_TORCH // 2:
        return _with(fit, Verdict.TIGHT, f"{held}, little to spare; {where}")
    return _with(fit, Verdict.FITS, f"{held}; {where}")


def longest_fitting(est: Estimate, room: float, in_flight: int) -> int:
    """The largest length (a multiple of BLOCK, at most the model's context) whose KV cache
    fits in `room`: a binary search, as vLLM's `estimate_max_model_len` does."""
    if room <= 0:
        return 0
    per_token = est.kv_per_token_per_gpu or 0
    top = est.model_context or (int(room // per_token) if per_token else MAX_CONTEXT)
    low, high = 0, max(0, top) // BLOCK  # in blocks
    while low < high:
        mid = (low + high + 1) // 2
        if kv_bytes(est, mid * BLOCK, in_flight) <= room:
            low = mid
        else:
            high = mid - 1
    fits = low * BLOCK
    if est.model_context and fits == top // BLOCK * BLOCK and kv_bytes(est, top, in_flight) <= room:
        return top  # the whole context fits, even if it is not a multiple of BLOCK
    return fits


def _with(fit: Fit, verdict: Verdict, reason: str) -> Fit:
    return replace(fit, verdict=verdict, reason=reason)
