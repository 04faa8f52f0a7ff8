"""Whose GPU memory is it: our server's share, leftovers before a launch, release after a stop.

Our server's processes are known by PID (its session, from `procs.session_pids`). Where NVML
lists other PIDs than ours (inside a container it may report the host's), nothing matches, so
our share is the change in used memory since a baseline snapshot taken at launch, and is
labelled so. `await_memory_released` blocks (it polls NVML): call it from a thread worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from vllm_console.core.gpu.nvml import GpuProcess, GpuSnapshot, Sampler, gib_text
from vllm_console.core.serve.proctable import VLLM_NAME_PREFIX

RELEASE_TIMEOUT = 10.0
RELEASE_POLL = 0.5
# Memory that moves on its own (other users, driver caches) before a change counts as ours.
CHANGE_TOLERANCE = 256 << 20

SnapshotReader = Callable[[], GpuSnapshot]


class Attribution(StrEnum):
    BY_PROCESS = "by process"
    BY_CHANGE = "by change since launch"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class OurMemory:
    """Our server's memory on one GPU and how it was found."""

    index: int
    used: int | None
    how: Attribution
    pids: tuple[int, ...] = ()

    def label(self) -> str:
        if self.how is Attribution.UNKNOWN:
            return "N/A"
        return f"{gib_text(self.used)} ({self.how})"


@dataclass(frozen=True)
class Holder:
    """A process (or, unmatched by PID, an amount) still holding memory on a GPU."""

    gpu: int
    pid: int | None
    used: int | None
    name: str | None = None
    command: str | None = None

    def describe(self) -> str:
        amount = gib_text(self.used) if self.used is not None else "an unknown amount"
        if self.pid is None:
            return f"{amount} on GPU {self.gpu} not returned since launch (no PID of ours visible)"
        return f"{self.name or '?'} (pid {self.pid}) holds {amount} on GPU {self.gpu}"


def _matches(snapshot: GpuSnapshot, pids: Collection[int]) -> bool:
    return any(p.pid in pids for d in snapshot.devices for p in d.processes)


def our_memory(
    snapshot: GpuSnapshot, pids: Collection[int], baseline: GpuSnapshot | None = None
) -> tuple[OurMemory, ...]:
    """Our memory per GPU: summed over our PIDs, or else the change since `baseline`.

    If any device lists one of our PIDs, PIDs are trusted everywhere (a GPU without ours has
    0). Otherwise each device's growth since the baseline counts, labelled as such; without a
    baseline the share is unknown.
    """
    pids = set(pids)
    by_process = _matches(snapshot, pids)
    result = []
    for dev in snapshot.devices:
        if by_process:
            ours = [p for p in dev.processes if p.pid in pids]
            known = [p.used_memory for p in ours if p.used_memory is not None]
            used = sum(known) if known or not ours else None
            pid_list = tuple(p.pid for p in ours)
            result.append(OurMemory(dev.index, used, Attribution.BY_PROCESS, pid_list))
            continue
        before = baseline.device(dev.index) if baseline is not None else None
        if before is None or before.memory_used is None or dev.memory_used is None:
            result.append(OurMemory(dev.index, None, Attribution.UNKNOWN))
            continue
        change = max(0, dev.memory_used - before.memory_used)
        result.append(OurMemory(dev.index, change, Attribution.BY_CHANGE))
    return tuple(result)


def _holder(gpu: int, proc: GpuProcess) -> Holder:
    return Holder(gpu, proc.pid, proc.used_memory, proc.name, proc.command)


def holders(
    snapshot: GpuSnapshot, pids: Collection[int], baseline: GpuSnapshot | None = None
) -> list[Holder]:
    """Our processes still on a GPU; unmatched by PID, growth since `baseline` beyond noise."""
    pids = set(pids)
    found = [_holder(d.index, p) for d in snapshot.devices for p in d.processes if p.pid in pids]
    if found or baseline is None:
        return found
    for dev in snapshot.devices:
        before = baseline.device(dev.index)
        if before is None or before.memory_used is None or dev.memory_used is None:
            continue
        change = dev.memory_used - before.memory_used
        if change > CHANGE_TOLERANCE:
            found.append(Holder(dev.index, None, change))
    return found


def await_memory_released(
    source: Sampler | SnapshotReader,
    pids: Collection[int],
    *,
    baseline: GpuSnapshot | None = None,
    timeout: float = RELEASE_TIMEOUT,
    poll: float = RELEASE_POLL,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[Holder]:
    """Poll until none of `pids` holds GPU memory; what still does after `timeout` (blocks).

    Pass the PIDs the server had while it ran: after a stop the session may be empty while a
    defunct worker still holds memory. Pass `baseline` only where attribution was by change
    since launch. Without a GPU nothing can be held: the answer is empty.
    """
    if isinstance(source, Sampler):
        return _await_with_sampler(source, pids, baseline, timeout, poll, sleep, clock) or []
    return _poll(source, pids, baseline, timeout, poll, sleep, clock)


def check_released(
    pids: Collection[int], *, sampler: Sampler | None = None, timeout: float = RELEASE_TIMEOUT
) -> list[Holder] | None:
    """After a stop: None without a GPU (nothing to check), else what of `pids` still holds
    GPU memory after up to `timeout` seconds (empty: all of it came back). Blocks."""
    return _await_with_sampler(
        sampler or Sampler(), pids, None, timeout, RELEASE_POLL, time.sleep, time.monotonic
    )


def _await_with_sampler(
    sampler: Sampler,
    pids: Collection[int],
    baseline: GpuSnapshot | None,
    timeout: float,
    poll: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> list[Holder] | None:
    """None when NVML cannot be opened (no GPU); else `_poll` on the sampler's reads."""
    if sampler.open() is not None:
        return None
    try:
        return _poll(sampler.read, pids, baseline, timeout, poll, sleep, clock)
    finally:
        sampler.close()


def _poll(
    read: SnapshotReader,
    pids: Collection[int],
    baseline: GpuSnapshot | None,
    timeout: float,
    poll: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> list[Holder]:
    watch = ReleaseWatch(frozenset(pids), baseline, clock(), timeout)
    while True:
        outcome = watch.check(read(), clock())
        if outcome.state is not Release.WAITING:
            return list(outcome.holders)
        sleep(min(poll, max(0.0, watch.deadline - clock())))


class Release(StrEnum):
    RELEASED = "released"  # nothing of ours is on a GPU any more
    WAITING = "waiting"  # something still is, and the time allowed is not over
    HELD = "held"  # something still is after the time allowed
    NO_GPU = "no GPU"  # no GPU readings: nothing can be held (or known)


@dataclass(frozen=True)
class ReleaseOutcome:
    state: Release
    holders: tuple[Holder, ...] = ()
    after: float = 0.0  # seconds since the watch began


@dataclass(frozen=True)
class ReleaseWatch:
    """Does our memory come back after a stop? Fed one snapshot at a time (never blocks).

    `pids` are every PID the server had while it ran (after a stop its session may be empty
    while a defunct worker still holds memory); `baseline` only where our share was found by
    the change since launch. The console feeds it the GPU strip's snapshots; `_poll` above
    feeds it from NVML directly.
    """

    pids: frozenset[int]
    baseline: GpuSnapshot | None
    started: float
    timeout: float = RELEASE_TIMEOUT

    @property
    def deadline(self) -> float:
        return self.started + self.timeout

    def check(self, snapshot: GpuSnapshot, now: float) -> ReleaseOutcome:
        after = max(0.0, now - self.started)
        if not snapshot.available:
            return ReleaseOutcome(Release.NO_GPU, (), after)
        left = tuple(holders(snapshot, self.pids, self.baseline))
        if not left:
            return ReleaseOutcome(Release.RELEASED, (), after)
        state = Release.HELD if now >= self.deadline else Release.WAITING
        return ReleaseOutcome(state, left, after)


def is_vllm(proc: GpuProcess) -> bool:
    """vLLM's renamed engine and workers, or a process whose command line runs vLLM."""
    if proc.name and proc.name.startswith(VLLM_NAME_PREFIX):
        return True
    words = [w.rsplit("/", 1)[-1] for w in (proc.command or "").split()[:3]]
    if not words or words[0] == "vllm":
        return bool(words)
    if not words[0].startswith("python") or len(words) < 2:
        return False
    if words[1] == "-m":
        return len(words) > 2 and (words[2] == "vllm" or words[2].startswith("vllm."))
    return words[1] == "vllm"


def leftover_holders(snapshot: GpuSnapshot, exclude: Iterable[int] = ()) -> list[Holder]:
    """vLLM processes holding GPU memory that are not ours (`exclude`): point them out."""
    skip = set(exclude)
    return [
        _holder(d.index, p)
        for d in snapshot.devices
        for p in d.processes
        if p.pid not in skip and is_vllm(p)
    ]
