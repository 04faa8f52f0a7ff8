"""Fuzzing who holds GPU memory (`core.gpu.owners.attribute`): NVML's readings are outside
input, and so are the servers' names and process trees.

The readings are what a driver may really give, and worse: process lists read at another
moment than the memory (they add up to more than the GPU uses, or to less), a PID listed twice,
memory NVML will not say (None), figures blown up to 2**64 or below zero, baselines of other
GPUs or none; the servers share PIDs (a PID reused) and have any names. `check_shares` holds
the attribution to what a screen relies on: one answer per GPU, every amount >= 0, each PID
counted once and for the first server that has it, and the shares plus the rest never more
than the memory used (exactly that much when every figure is known). `PARSERS` is read by
bench/fuzz_campaign.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from hypothesis import strategies as st

from vllm_console.core.gpu.nvml import GpuProcess, GpuSample, GpuSnapshot, GpuState
from vllm_console.core.gpu.owners import Attribution, Rest, attribute, owner_totals

LIMIT = 1.0  # seconds per input
GiB = 1 << 30
Reading = tuple[GpuSnapshot, dict[str, frozenset[int]], dict[str, GpuSnapshot]]

_amounts = st.one_of(
    st.none(),
    st.integers(0, 160 * GiB),
    st.sampled_from([0, 1, 2**63 - 1, 2**64, -1, -(2**40)]),
)
_pids = st.integers(1, 12)  # a small pool, so that servers and lists overlap


@st.composite
def _device(draw: st.DrawFn, index: int) -> GpuSample:
    procs = draw(st.lists(st.builds(GpuProcess, _pids, _amounts), max_size=8))
    return GpuSample(
        index,
        memory_total=draw(_amounts),
        memory_used=draw(_amounts),
        processes=tuple(procs),
        processes_known=True,
    )


@st.composite
def _snapshot(draw: st.DrawFn) -> GpuSnapshot:
    indexes = draw(st.lists(st.integers(0, 7), min_size=1, max_size=4, unique=True))
    devices = tuple(draw(_device(i)) for i in indexes)
    return GpuSnapshot(0.0, GpuState.OK, "ok", "550", devices)


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    snapshot = draw(_snapshot())
    names = draw(st.lists(st.text(max_size=12), max_size=4, unique=True))
    owners = {name: frozenset(draw(st.sets(_pids, max_size=5))) for name in names}
    starting = draw(st.lists(st.sampled_from(names or [""]), max_size=3, unique=True))
    baselines = {name: draw(_snapshot()) for name in starting}
    return snapshot, owners, baselines


def _first_owner(owners: Mapping[str, frozenset[int]]) -> dict[int, str]:
    first: dict[int, str] = {}
    for name, pids in owners.items():
        for pid in pids:
            first.setdefault(pid, name)
    return first


def check_shares(data: Any) -> None:
    snapshot, owners, baselines = data
    start = time.monotonic()
    gpus = attribute(snapshot, owners, baselines)
    took = time.monotonic() - start
    assert took < LIMIT, f"took {took:.2f} s"
    assert [g.index for g in gpus] == [d.index for d in snapshot.devices]
    first = _first_owner(owners)
    for gpu, dev in zip(gpus, snapshot.devices, strict=True):
        counted = [pid for share in gpu.shares for pid in share.pids]
        assert len(counted) == len(set(counted)), f"a PID counted twice: {counted}"
        assert all(first[pid] == s.owner for s in gpu.shares for pid in s.pids)
        assert len({s.owner for s in gpu.shares}) == len(gpu.shares), "a server twice"
        assert all(s.owner in owners or s.owner in baselines for s in gpu.shares)
        amounts = [s.used for s in gpu.shares] + [gpu.rest]
        assert all(a is None or a >= 0 for a in amounts), amounts
        if gpu.rest_kind is Rest.UNATTRIBUTED:
            assert all(s.how is not Attribution.BY_PROCESS for s in gpu.shares)
        if dev.memory_used is None:
            continue
        used = max(0, dev.memory_used)
        total = sum(a or 0 for a in amounts)
        assert total <= used, (total, used)
        if None not in amounts:
            assert total == used, (total, used)
    for name, overall in owner_totals(gpus).items():
        assert overall is None or overall >= 0, (name, overall)


PARSERS: dict[str, tuple[Callable[[Any], None], st.SearchStrategy[Any]]] = {
    "gpu_shares": (check_shares, readings()),
}
