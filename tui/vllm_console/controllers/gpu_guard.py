"""After a stop, does our GPU memory come back? The console's side of
`core.gpu.owners.ReleaseWatch`.

While a server runs, the guard collects every PID it had (its session, read by
`controllers.server` every few seconds, and the PIDs NVML attributed to it) and whether our
share was only visible as the change since launch. When the server ends (stopped or
failed), it feeds the GPU strip's snapshots to a `ReleaseWatch`: released within 10 s is
said in a notification; still held after that opens a dialog naming each PID and its memory,
with the offer to kill them, and then watches those again. Without a GPU there is nothing
to watch and nothing is said.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from textual.app import App

from vllm_console.core.gpu.nvml import GpuSnapshot
from vllm_console.core.gpu.owners import (
    RELEASE_TIMEOUT,
    Attribution,
    Holder,
    OurMemory,
    Release,
    ReleaseWatch,
)

# Shows the holders and answers with the PIDs to kill ([] to leave them): a dialog, which
# the App passes in because controllers sit below screens in the layers.
AskToKill = Callable[[App[Any], str, tuple[Holder, ...], Callable[[list[int]], None]], None]


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
        self._pids: set[int] = set()
        self._by_change = False
        self._last: GpuSnapshot | None = None
        self._after = "the server stopped"
        self.watch: ReleaseWatch | None = None
        self.outcome: Release | None = None  # the last watch's end, for the quit flow and tests
        self.idle = asyncio.Event()
        self.idle.set()

    # -- while the server runs ------------------------------------------------------------

    def launched(self) -> None:
        self._pids.clear()
        self._by_change = False
        self._end_watch(None)

    def add_pids(self, pids: Iterable[int]) -> None:
        self._pids.update(pids)

    def seen(self, ours: Iterable[OurMemory]) -> None:
        for share in ours:
            self._pids.update(share.pids)
            if share.how is Attribution.BY_CHANGE and share.used:
                self._by_change = True

    # -- after it ended ---------------------------------------------------------------------

    def server_ended(self, baseline: GpuSnapshot | None) -> None:
        """Start watching; the next snapshots answer. Nothing known of ours: nothing to do."""
        base = baseline if self._by_change else None
        if self._last is None or not self._last.available or (not self._pids and base is None):
            return
        self._start(frozenset(self._pids), base, "the server stopped")

    def _start(self, pids: frozenset[int], baseline: GpuSnapshot | None, after: str) -> None:
        self._after = after
        watch = self.watch = ReleaseWatch(pids, baseline, self._clock(), self.timeout)
        self.outcome = None
        self.idle.clear()
        # If the strip stops sampling (NVML failing), the last reading answers at the deadline.
        self._app.set_timer(watch.timeout + 1.0, lambda: self._expire(watch))

    def _expire(self, watch: ReleaseWatch) -> None:
        if self.watch is watch and self._last is not None:
            self.snapshot(self._last)

    def _end_watch(self, outcome: Release | None) -> None:
        self.watch = None
        self.outcome = outcome
        self.idle.set()

    def snapshot(self, snapshot: GpuSnapshot) -> None:
        self._last = snapshot
        watch = self.watch
        if watch is None:
            return
        result = watch.check(snapshot, self._clock())
        if result.state is Release.WAITING:
            return
        self._end_watch(result.state)
        if result.state is Release.RELEASED:
            self._app.notify(f"GPU memory released {result.after:.1f} s after {self._after}.")
        elif result.state is Release.HELD:
            self._offer_kill(result.holders, watch)

    def _offer_kill(self, holders: tuple[Holder, ...], watch: ReleaseWatch) -> None:
        title = f"GPU memory still held {watch.timeout:g} s after the server stopped"
        self.idle.clear()  # until the dialog is answered

        def answered(pids: list[int]) -> None:
            if pids:
                self.kill(pids)
            else:
                self.idle.set()

        self._ask_to_kill(self._app, title, holders, answered)

    def kill(self, pids: list[int]) -> None:
        """SIGKILL `pids` (in a thread), say what happened, then watch them let go."""
        from vllm_console.core.serve.proctable import kill_pids

        async def run() -> None:
            said = await asyncio.to_thread(kill_pids, pids)
            self._app.notify("; ".join(said), title="Kill")
            self._start(frozenset(pids), None, "the kill")

        self.idle.clear()
        self._app.run_worker(run(), group="gpu-kill", exit_on_error=False)
