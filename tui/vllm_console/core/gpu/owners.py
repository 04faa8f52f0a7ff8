"""Whose GPU memory is it: each of our servers' share, leftovers before a launch, release
after a stop.

Our servers' processes are known by PID (each server's session, from
`proctable.session_pids`), and `attribute` sums them per GPU and per server; what no server of
ours holds is the rest. Where NVML lists other PIDs than ours (inside a container it may report
the host's), nothing matches, so a server's share is the change in used memory since a baseline
snapshot taken at its launch, labelled so, as long as only one server has such a baseline: with
several, the change cannot be split and is called unattributed. `await_memory_released` blocks
(it polls NVML): call it from a thread worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from vllm_console.core.gpu.nvml import GpuProcess, GpuSample, GpuSnapshot, Sampler, gib_text
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
class Share:
    """One server's memory on one GPU and how it was found (`used` None: not known)."""

    owner: str
    used: int | None
    how: Attribution
    pids: tuple[int, ...] = ()

    def amount(self) -> str:
        """'14.2 GiB', 'N/A', or '14.2 GiB since launch' where only the change is known."""
        if self.how is Attribution.BY_CHANGE:
            return f"{gib_text(self.used)} since launch"
        return gib_text(self.used)


class Rest(StrEnum):
    NOT_OURS = "not ours"  # held by no server of ours
    UNATTRIBUTED = "unattributed"  # ours or not: NVML names none of our PIDs to tell by


@dataclass(frozen=True)
class GpuShares:
    """Who holds one GPU's memory: each of our servers' share, and the rest of what is used.

    `rest` is the used memory that no share covers (None: not known, as when NVML hides a
    process's memory); `rest_kind` says whether it is no server's of ours or cannot be told.
    """

    index: int
    shares: tuple[Share, ...]
    rest: int | None
    rest_kind: Rest = Rest.NOT_OURS

    @property
    def ours(self) -> int:
        """Our servers' known memory on this GPU, summed."""
        return sum(s.used or 0 for s in self.shares)

    def owner_of(self) -> dict[int, str]:
        """Each PID of ours seen on this GPU, with its server's name."""
        return {pid: s.owner for s in self.shares for pid in s.pids}


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


def attribute(
    snapshot: GpuSnapshot,
    owners: Mapping[str, Collection[int]],
    baselines: Mapping[str, GpuSnapshot] | None = None,
) -> tuple[GpuShares, ...]:
    """Each GPU's memory by server: `owners` maps a server's name to its PIDs (its process
    tree), `baselines` a server's name to the snapshot taken at its launch.

    Where any GPU lists a PID of ours, PIDs are trusted everywhere: a server's share is its
    PIDs' memory, and the rest is not ours. A PID counts once, for the first server in
    `owners` that has it. NVML may list no PID of ours (a container sees the host's PIDs, or
    nothing is loaded yet): then the change since a launch is that server's share only while
    exactly one server has a baseline; otherwise the memory is unattributed. Shares never add
    up to more than the GPU's used memory (process lists are read less often than memory, so
    they may be older).
    """
    baselines = baselines or {}
    owner_of: dict[int, str] = {}
    for name, pids in owners.items():
        for pid in pids:
            owner_of.setdefault(pid, name)
    names = list(dict.fromkeys([*owners, *baselines]))
    devices = snapshot.devices
    if not names:
        return tuple(GpuShares(d.index, (), _used(d), Rest.NOT_OURS) for d in devices)
    if any(p.pid in owner_of for d in devices for p in d.processes):
        return tuple(_by_process(d, owner_of, names) for d in devices)
    starting = [name for name in names if name in baselines]
    if len(starting) == 1:
        alone = names == starting
        base = baselines[starting[0]]
        return tuple(_by_change(d, base.device(d.index), starting[0], alone) for d in devices)
    return tuple(GpuShares(d.index, (), _used(d), Rest.UNATTRIBUTED) for d in devices)


def _used(dev: GpuSample) -> int | None:
    return None if dev.memory_used is None else max(0, dev.memory_used)


def _by_process(dev: GpuSample, owner_of: Mapping[int, str], names: list[str]) -> GpuShares:
    pids: dict[str, list[int]] = {}
    known: dict[str, list[int]] = {}
    seen: set[int] = set()
    hidden = False  # a process of ours whose memory NVML does not say
    for proc in dev.processes:
        name = owner_of.get(proc.pid)
        if name is None or proc.pid in seen:
            continue
        seen.add(proc.pid)
        pids.setdefault(name, []).append(proc.pid)
        if proc.used_memory is None:
            hidden = True
        else:
            known.setdefault(name, []).append(max(0, proc.used_memory))
    room = _used(dev)  # what is left to give out (None: the GPU does not say)
    shares = []
    for name in names:
        if name not in pids:
            continue
        amount = sum(known[name]) if name in known else None
        if amount is not None and room is not None:
            amount = min(amount, room)
            room -= amount
        shares.append(Share(name, amount, Attribution.BY_PROCESS, tuple(pids[name])))
    return GpuShares(dev.index, tuple(shares), None if hidden else room, Rest.NOT_OURS)


def _by_change(dev: GpuSample, before: GpuSample | None, name: str, alone: bool) -> GpuShares:
    """The growth since `name`'s launch is its share; the rest is not ours only if no other
    server of ours runs (else theirs is in the rest too)."""
    kind = Rest.NOT_OURS if alone else Rest.UNATTRIBUTED
    used = _used(dev)
    if before is None or before.memory_used is None or used is None:
        return GpuShares(dev.index, (Share(name, None, Attribution.UNKNOWN),), None, kind)
    change = min(used, max(0, used - before.memory_used))
    return GpuShares(dev.index, (Share(name, change, Attribution.BY_CHANGE),), used - change, kind)


def owner_totals(gpus: Iterable[GpuShares]) -> dict[str, int | None]:
    """Each server's memory over all GPUs (None where a share on some GPU is not known)."""
    totals: dict[str, int | None] = {}
    for gpu in gpus:
        for share in gpu.shares:
            before = totals.get(share.owner, 0)
            known = before is not None and share.used is not None
            totals[share.owner] = (before or 0) + (share.used or 0) if known else None
    return totals


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
