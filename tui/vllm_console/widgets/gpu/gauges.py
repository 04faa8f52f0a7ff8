"""The GPU strip: one gauge block per GPU, sampled by its own thread worker.

`GpuGauges` starts a thread worker that runs `Sampler.run` until a stop event is set (on
unmount). The sampler thread never touches widgets: it leaves the newest snapshot in a slot
and posts a wake-up only when none is pending, so a slow screen gets at most one repaint per
tick, not a queue of stale ones. Each snapshot shown is then announced upwards as
`GpuGauges.Updated`.

No driver and no GPU are states shown plainly on one line, with NVML's reason: a CPU build of
vLLM still runs, so nothing else in the console cares. The app tells the strip which PIDs
are each of our servers' (`owners`: a name and its process tree) and, for containers where
NVML reports other PIDs, the snapshot taken at each launch (`baselines`); each GPU block then
shows every server's share by name and the memory held by none of them
(`core.gpu.owners.attribute`), and `Updated` carries those shares up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from types import MappingProxyType

from textual import work
from textual.app import ComposeResult
from textual.containers import Container
from textual.content import Content
from textual.events import Resize
from textual.message import Message
from textual.reactive import var
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from vllm_console.core.gpu.nvml import (
    DEFAULT_INTERVAL,
    GiB,
    GpuSnapshot,
    GpuState,
    Sampler,
)
from vllm_console.core.gpu.owners import GpuShares, attribute, owner_totals
from vllm_console.core.text import visible
from vllm_console.widgets.gpu.block import GpuBlock
from vllm_console.widgets.worker_errors import ReportsWorkerErrors

SamplerFactory = Callable[..., Sampler]  # called as factory(interval=...)
MIN_BLOCK_WIDTH = 38  # below this per block, blocks wrap onto more rows
MAX_COLUMNS = 4
CPU_NOTE = "a CPU build of vLLM can still run"
NO_OWNERS: Mapping[str, frozenset[int]] = MappingProxyType({})
NO_BASELINES: Mapping[str, GpuSnapshot] = MappingProxyType({})


def state_text(snapshot: GpuSnapshot | None) -> str:
    """The one line shown instead of blocks: waiting, no GPU, or NVML failing."""
    if snapshot is None:
        return "GPUs: looking…"
    if snapshot.state in (GpuState.NO_DRIVER, GpuState.NO_GPU):
        return f"No GPU — {snapshot.reason}; {CPU_NOTE}"
    return f"GPU readings unavailable — {snapshot.reason}; retrying"


def memory_summary(snapshot: GpuSnapshot | None) -> str:
    """A short total for a header: 'GPU 18.0/104 GiB', or 'no GPU'."""
    if snapshot is None or not snapshot.available:
        return "no GPU" if snapshot is not None and snapshot.state is not GpuState.ERROR else ""
    used = sum(d.memory_used or 0 for d in snapshot.devices)
    total = sum(d.memory_total or 0 for d in snapshot.devices)
    return f"GPU {used / GiB:.1f}/{total / GiB:.0f} GiB"


def columns_for(width: int, blocks: int) -> int:
    return max(1, min(blocks, MAX_COLUMNS, width // MIN_BLOCK_WIDTH))


class GpuGauges(ReportsWorkerErrors, Container):
    """One gauge block per GPU, or a one-line state when there is none to show."""

    DEFAULT_CSS = Path(__file__).with_name("gauges.tcss").read_text(encoding="utf-8")

    class Updated(Message):
        """A new snapshot is shown; `shares` is who holds each GPU's memory, by server
        (empty: no server of ours)."""

        def __init__(self, snapshot: GpuSnapshot, shares: tuple[GpuShares, ...]) -> None:
            super().__init__()
            self.snapshot = snapshot
            self.shares = shares

        @property
        def by_owner(self) -> dict[str, int | None]:
            """Each server's memory over all GPUs (None: not known), for a header or a fleet."""
            return owner_totals(self.shares)

    class _Sampled(Message):
        """From the sampler thread: a snapshot waits in the slot."""

    snapshot: var[GpuSnapshot | None] = var(None, always_update=True)
    """The snapshot shown; set by the worker, or by the host when there is no sampler."""
    owners: var[Mapping[str, frozenset[int]]] = var(NO_OWNERS)
    """Each of our servers by name, with the PIDs of its whole tree; empty when none runs."""
    baselines: var[Mapping[str, GpuSnapshot]] = var(NO_BASELINES)
    """The snapshot taken at a server's launch, by name: its share where NVML lists none of
    our PIDs (used while only one server has one)."""

    def __init__(
        self,
        sampler_factory: SamplerFactory | None = Sampler,
        *,
        interval: float = DEFAULT_INTERVAL,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """`sampler_factory(interval=...)` makes the sampler; None: the host sets `snapshot`."""
        super().__init__(id=id, classes=classes)
        self.add_class("-state")  # until the first snapshot
        self._factory = sampler_factory
        self._interval = interval
        self._stop = threading.Event()
        self._slot_lock = threading.Lock()
        self._slot: GpuSnapshot | None = None
        self._wake_pending = False
        self._paint_pending = False
        self._state_text = ""
        self._generation = 0  # of paints: a newer one stops an older one's remaining blocks
        self._turn = 0  # blocks painted so far: the next paint starts with the next one
        self._shares_of: tuple[object, ...] | None = None  # what `_shares` was worked out from
        self._shares: tuple[GpuShares, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static(state_text(None), classes="gpu-state")
        yield Container(classes="gpu-blocks")

    def on_mount(self) -> None:
        self._invalidate()  # a snapshot may have been set before mounting
        if self._factory is not None:
            self._sample()

    def on_unmount(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        """Stop sampling (the worker's thread returns within one interval)."""
        self._stop.set()

    # -- the sampler thread ---------------------------------------------------------------

    @work(thread=True, exclusive=True, group="gpu-sampler", exit_on_error=False)
    def _sample(self) -> None:
        assert self._factory is not None
        sampler = self._factory(interval=self._interval)
        sampler.run(self._stop, self.deliver)

    def deliver(self, snapshot: GpuSnapshot) -> None:
        """Thread-safe: keep only the newest snapshot and wake the widget once for it.

        The sampler thread calls this each tick; a host with its own sampler may too.
        """
        with self._slot_lock:
            self._slot = snapshot
            wake, self._wake_pending = not self._wake_pending, True
        if wake:
            self.post_message(self._Sampled())

    def on_gpu_gauges__sampled(self, message: _Sampled) -> None:
        message.stop()
        with self._slot_lock:
            snapshot, self._slot = self._slot, None
            self._wake_pending = False
        if snapshot is not None:
            self.snapshot = snapshot
            self.post_message(self.Updated(snapshot, self.shares()))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "gpu-sampler" or event.state is not WorkerState.ERROR:
            return
        error = worker.error
        reason = f"the sampler failed: {type(error).__name__}: {error}"
        self.snapshot = GpuSnapshot(time.time(), GpuState.ERROR, reason)

    # -- our servers ------------------------------------------------------------------------

    def launching(self, name: str) -> None:
        """`name` starts: its PIDs are not known yet, and the snapshot shown now (before it
        takes any memory) is its baseline."""
        self.owners = {**self.owners, name: frozenset()}
        snap = self.snapshot
        if snap is not None and snap.available:
            self.baselines = {**self.baselines, name: snap}

    def set_pids(self, name: str, pids: frozenset[int]) -> None:
        """`name`'s process tree as last read."""
        if self.owners.get(name) != pids:
            self.owners = {**self.owners, name: pids}

    def forget(self, name: str) -> GpuSnapshot | None:
        """`name` is gone: no share of it is shown any more. Its baseline, if it had one."""
        if name in self.owners:
            self.owners = {k: v for k, v in self.owners.items() if k != name}
        baseline = self.baselines.get(name)
        if baseline is not None:
            self.baselines = {k: v for k, v in self.baselines.items() if k != name}
        return baseline

    # -- painting ---------------------------------------------------------------------------

    def shares(self) -> tuple[GpuShares, ...]:
        """Who holds each GPU's memory in the shown snapshot; empty when no server runs.

        Worked out once per snapshot, servers and baselines (a paint and `Updated` share it).
        """
        snap = self.snapshot
        if snap is None or not snap.available or not (self.owners or self.baselines):
            return ()
        inputs = (snap, self.owners, self.baselines)
        if self._shares_of is None or any(
            a is not b for a, b in zip(inputs, self._shares_of, strict=True)
        ):
            self._shares = attribute(snap, self.owners, self.baselines)
            self._shares_of = inputs
        return self._shares

    def watch_snapshot(self) -> None:
        self._invalidate()

    def watch_owners(self) -> None:
        self._invalidate()

    def watch_baselines(self) -> None:
        self._invalidate()

    def on_resize(self, event: Resize) -> None:
        self._set_columns()

    def _invalidate(self) -> None:
        """Repaint once, however many of snapshot, servers and baselines changed meanwhile."""
        if self._paint_pending or not self.is_mounted:
            return
        self._paint_pending = True
        self.call_later(self._paint)

    async def _paint(self) -> None:
        self._paint_pending = False
        snap = self.snapshot
        blocks = self.query_one(".gpu-blocks", Container)
        if snap is not None and snap.devices:
            wanted = [d.index for d in snap.devices]
            if [b.index for b in blocks.query_children(GpuBlock)] != wanted:
                await blocks.remove_children()
                await blocks.mount_all(GpuBlock(i, id=f"gpu-{i}") for i in wanted)
        self._paint_now()

    def _paint_now(self) -> None:
        snap = self.snapshot
        shown = snap is not None and snap.state is GpuState.OK and bool(snap.devices)
        self.set_class(not shown, "-state")
        state = self.query_one(".gpu-state", Static)
        text = state_text(snap)
        if text != self._state_text:
            self._state_text = text
            state.update(Content(visible(text)))  # the driver's reason, as it said it
        state.set_class(snap is not None and snap.state is GpuState.ERROR, "-error")
        blocks = self.query_one(".gpu-blocks", Container)
        if not shown or snap is None:
            return
        shares = {gpu.index: gpu for gpu in self.shares()}
        rings = dict(zip((d.index for d in snap.devices), snap.history, strict=False))
        jobs: list[Callable[[], None]] = []
        for block in blocks.query_children(GpuBlock):
            sample = snap.device(block.index)
            if sample is not None:
                ring = rings.get(block.index, ())
                gpu = shares.get(block.index)
                owners = gpu.owner_of() if gpu is not None else {}
                jobs.append(partial(block.show, sample, ring, gpu, owners))
        self._generation += 1
        # Start where the paint before stopped: on a busy loop a new sample may come before
        # every block had its turn, and the last blocks must not wait for a calm moment.
        turn = self._turn % len(jobs) if jobs else 0
        self._show_blocks(self._generation, jobs[turn:] + jobs[:turn])
        self._set_columns()

    def _show_blocks(self, generation: int, jobs: list[Callable[[], None]]) -> None:
        """One block per frame: each frame then renders one block's changes, not all of them.

        Painting every block in one go cost the event loop ~6 ms per block on a slow machine
        (bench/bench_gpu_sampler.py); one per refresh keeps each pause that short. A newer
        paint supersedes the rest of an older one and goes on from where it stopped.
        """
        if generation != self._generation or not jobs:
            return
        jobs[0]()
        self._turn += 1
        if len(jobs) > 1:
            self.call_after_refresh(self._show_blocks, generation, jobs[1:])

    def _set_columns(self) -> None:
        count = len(self.query_one(".gpu-blocks", Container).children)
        cols = columns_for(self.size.width, count)
        for n in range(2, MAX_COLUMNS + 1):
            self.set_class(cols == n, f"-cols-{n}")
