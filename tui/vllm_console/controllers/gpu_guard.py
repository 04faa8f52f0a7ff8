"""After a server stops, does its GPU memory come back? The console's side of
`core.gpu.owners.ReleaseWatch`, for each of several servers.

While servers run, the guard collects, per server name, every PID it had (its session, read
by `controllers.server` every few seconds, and the PIDs NVML attributed to it) and whether its
share was only visible as the change since its launch. When one ends (stopped or failed), the
guard feeds the GPU strip's snapshots to a `ReleaseWatch` for that server alone: released
within 10 s is said in a notification; still held after that opens a dialog naming each PID
and its memory, with the offer to kill them, and then watches those again.

Other servers keep running meanwhile, and may grow or shrink: a watch looks only at the
ended server's PIDs (never at one that another live server owns), so their memory neither
delays nor fakes a release. Where NVML names none of our PIDs (a container), the change since
the server's launch is watched instead, but only if no other server of ours runs; with others
running it cannot be told whose the memory is, so nothing is said rather than guessed.
Without a GPU there is nothing to watch and nothing is said.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from textual.app import App

from vllm_console.core.gpu.nvml import GpuSnapshot
from vllm_console.core.gpu.owners import (
    RELEASE_TIMEOUT,
    Attribution,
    GpuShares,
    Holder,
    Release,
    ReleaseWatch,
)

# Shows the holders and answers with the PIDs to kill ([] to leave them): a dialog, which
# the App passes in because controllers sit below screens in the layers.
AskToKill = Callable[[App[Any], str, tuple[Holder, ...], Callable[[list[int]], None]], None]


@dataclass
class _Seen:
    """What is known of one running server: every PID it had, and how its share was found."""

    pids: set[int] = field(default_factory=set)
    by_change: bool = False


@dataclass(frozen=True, eq=False)  # each one is itself: two alike are still two watches
class Watching:
    """One release being watched: a server's after its stop (`server`), or PIDs after a kill."""

    watch: ReleaseWatch
    after: str  # "chat stopped", "the kill": ends the messages
    server: str | None = None


class GpuGuard:
    def __init__(
        self,
        app: App[Any],
        ask_to_kill: AskToKill,
        timeout: float = RELEASE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._app = app
        self._ask_to_kill = ask_to_kill
        self.timeout = timeout
        self._clock = clock
        self._servers: dict[str, _Seen] = {}
        self._listed = False  # NVML has listed a PID of ours: it sees our PID namespace
        self._last: GpuSnapshot | None = None
        self._pending = 0  # kill dialogs open and kills under way: not idle while any
        self.watching: list[Watching] = []
        self.outcome: Release | None = None  # the last watch's end, for the quit flow and tests
        self.outcomes: dict[str, Release] = {}  # each server's last watch's end
        self.idle = asyncio.Event()
        self.idle.set()

    # -- while servers run ------------------------------------------------------------------

    def launched(self, name: str) -> None:
        """`name` starts (again): forget what its earlier run had. A watch of its earlier run,
        and any watch that goes by the change since a launch, would take the new server's
        memory for what the old one left: they end unanswered."""
        self._servers[name] = _Seen()
        self.outcomes.pop(name, None)
        for watching in list(self.watching):
            if watching.server == name or watching.watch.baseline is not None:
                self._end(watching, None)

    def add_pids(self, name: str, pids: Iterable[int]) -> None:
        """`name`'s process tree as read now (a server attached to starts being followed)."""
        self._servers.setdefault(name, _Seen()).pids.update(pids)

    def seen(self, gpus: Iterable[GpuShares]) -> None:
        """The strip's attribution: the PIDs NVML showed for each server, and whether a
        server's share was only the change since its launch. A server that has ended already
        (a snapshot painted just before it did) is not brought back."""
        for gpu in gpus:
            for share in gpu.shares:
                self._listed = self._listed or share.how is Attribution.BY_PROCESS
                seen = self._servers.get(share.owner)
                if seen is None:
                    continue
                seen.pids.update(share.pids)
                if share.how is Attribution.BY_CHANGE and share.used:
                    seen.by_change = True

    # -- after one ended ----------------------------------------------------------------------

    def server_ended(self, name: str, baseline: GpuSnapshot | None) -> None:
        """Start watching `name`'s memory; the next snapshots answer. `baseline` is the
        snapshot at its launch, used only where its share was the change since then and it
        ran alone. Its PIDs alone are watched only once NVML has listed a PID of ours (inside a
        container it may never). Nothing known of its memory: nothing to do."""
        ended = self._servers.pop(name, _Seen())
        others = set().union(*(s.pids for s in self._servers.values()))
        pids = frozenset(ended.pids - others)  # never another live server's process
        base = baseline if ended.by_change and not self._servers else None
        if base is None and not self._listed:
            return  # NVML names none of our PIDs: watching them would call anything released
        if self._last is None or not self._last.available or (not pids and base is None):
            return
        self._start(pids, base, f"{name} stopped", name)

    def _start(
        self, pids: frozenset[int], baseline: GpuSnapshot | None, after: str, server: str | None
    ) -> None:
        watch = ReleaseWatch(pids, baseline, self._clock(), self.timeout)
        watching = Watching(watch, after, server)
        self.watching.append(watching)
        if server is not None:
            self.outcomes.pop(server, None)
        self.outcome = None
        self.idle.clear()
        # If the strip stops sampling (NVML failing), the last reading answers at the deadline.
        self._app.set_timer(self.timeout + 1.0, lambda: self._expire(watching))

    def _expire(self, watching: Watching) -> None:
        if watching in self.watching and self._last is not None:
            self._check(watching, self._last)

    def _end(self, watching: Watching, outcome: Release | None) -> None:
        self.watching.remove(watching)
        self.outcome = outcome
        if watching.server is not None and outcome is not None:
            self.outcomes[watching.server] = outcome
        self._settle()

    def _settle(self) -> None:
        if not self.watching and not self._pending:
            self.idle.set()

    def snapshot(self, snapshot: GpuSnapshot) -> None:
        self._last = snapshot
        for watching in list(self.watching):
            self._check(watching, snapshot)

    def _check(self, watching: Watching, snapshot: GpuSnapshot) -> None:
        result = watching.watch.check(snapshot, self._clock())
        if result.state is Release.WAITING:
            return
        if result.state is Release.HELD:
            self._pending += 1  # before the watch ends, so the guard never looks idle between
        self._end(watching, result.state)
        if result.state is Release.RELEASED:
            said = f"GPU memory released {result.after:.1f} s after {watching.after}."
            self._app.notify(said, markup=False)  # a server's name is the user's words
        elif result.state is Release.HELD:
            self._offer_kill(result.holders, watching)

    def _offer_kill(self, holders: tuple[Holder, ...], watching: Watching) -> None:
        title = f"GPU memory still held {watching.watch.timeout:g} s after {watching.after}"

        def answered(pids: list[int]) -> None:
            self._pending -= 1
            if pids:
                self.kill(pids)
            self._settle()

        self._ask_to_kill(self._app, title, holders, answered)

    def kill(self, pids: list[int]) -> None:
        """SIGKILL `pids` (in a thread), say what happened, then watch them let go."""
        from vllm_console.core.serve.proctable import kill_pids

        async def run() -> None:
            try:
                said = await asyncio.to_thread(kill_pids, pids)
                self._app.notify("; ".join(said), title="Kill", markup=False)
                self._start(frozenset(pids), None, "the kill", None)
            finally:
                self._pending -= 1
                self._settle()

        self._pending += 1
        self.idle.clear()
        self._app.run_worker(run(), group="gpu-kill", exit_on_error=False)
