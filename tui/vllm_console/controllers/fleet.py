"""The fleet's processes: whose PIDs are whose, for the GPU strip, the release guard and
the launch dialog.

Every PIDS_INTERVAL seconds the process tree of each local member that may run (launched
here or attached to) is read in one pass over /proc, in a thread; the result is a mapping
of member name -> PIDs (`owners`). `show` is the one place that hands it on. From it and the
strip's snapshot, `fleet_context` tells the launch dialog what the running members hold:
their names, their ports and their memory per GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING

from vllm_console.core.fleet.model import FleetContext

# Annotations only: the App imports the controllers before its first frame.
if TYPE_CHECKING:
    from vllm_console.app import VllmConsoleApp
    from vllm_console.controllers.gpu_guard import GpuGuard

PIDS_INTERVAL = 2.0  # seconds between reads of the members' process trees
Owners = Mapping[str, frozenset[int]]


def read_trees(roots: Mapping[str, int]) -> dict[str, frozenset[int]]:
    """Each member's process tree (its session), the root included; one pass over /proc."""
    from vllm_console.core.serve.proctable import sessions_pids

    found = sessions_pids(set(roots.values()))
    return {name: frozenset(found[root]) | {root} for name, root in roots.items()}


class FleetProcesses:
    """The members' process trees, read off the UI thread and handed to the strip."""

    def __init__(self, app: VllmConsoleApp, guard: Callable[[], GpuGuard | None]) -> None:
        self._app = app
        self._guard = guard
        self.owners: dict[str, frozenset[int]] = {}

    def start(self) -> None:
        self._app.set_interval(PIDS_INTERVAL, self.refresh, name="server-pids")

    def roots(self) -> dict[str, int]:
        """The session id of each member that may run."""
        panes = self._app.fleet.panes.items()
        return {name: pid for name, pane in panes if (pid := pane.process_group) is not None}

    def refresh(self) -> None:
        roots = self.roots()
        if not roots:
            if self.owners:
                self.show({})
            return
        self._app.run_worker(
            partial(self._read, roots),
            name="read_server_pids",
            group="server-pids",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def _read(self, roots: dict[str, int]) -> None:
        owners = read_trees(roots)
        self._app.call_from_thread(self._read_done, roots, owners)

    def _read_done(self, roots: dict[str, int], owners: Owners) -> None:
        now = self.roots()  # a member may have stopped, or launched again, meanwhile
        self.show({name: pids for name, pids in owners.items() if now.get(name) == roots[name]})

    def read_now(self, root: int) -> frozenset[int]:
        """One member's tree, read at once (before a stop: one pass over /proc)."""
        return read_trees({"": root})[""]

    def forget(self, name: str) -> None:
        """A member ended: its PIDs are no longer a server's."""
        if name in self.owners:
            self.show({n: pids for n, pids in self.owners.items() if n != name})

    def show(self, owners: Owners) -> None:
        """The one place the strip and the guard learn whose processes are whose."""
        from vllm_console.widgets.gpu.gauges import GpuGauges

        self.owners = dict(owners)
        for gauges in self._app.query("#gpus").results(GpuGauges):  # none while closing
            gauges.owners = dict(owners)
        guard = self._guard()
        if guard is not None:
            for name, pids in owners.items():
                guard.add_pids(name, pids)

    def fleet_context(self, leaving: str | None = None) -> FleetContext:
        """What a new launch must not take: the names and ports of the running members, and
        the memory they hold on each GPU (by their PIDs, as the strip counts it). `leaving`:
        a member launched again, whose own name, port and memory are its to take."""
        fleet = self._app.fleet
        running = [
            name for name, pane in fleet.panes.items() if pane.state.running and name != leaving
        ]
        ports = {port for name in running if (port := fleet.row(name).port) is not None}
        held: dict[int, int] = {}
        for gpu in self._app.gauges.shares():
            taken = sum(s.used or 0 for s in gpu.shares if s.owner != leaving)
            if taken:
                held[gpu.index] = taken
        names = frozenset(running) | frozenset(fleet.remotes)
        return FleetContext(names=names, ports=frozenset(ports), held=held)
