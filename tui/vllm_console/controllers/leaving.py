"""Quitting with servers running, and the servers earlier consoles left running.

Quit asks once, for the whole fleet: leave every member running (each launched one is
detached and recorded as left running, with its name; attached ones stay as they were),
stop them all (and wait for the GPU memory to come back), or stay. At start, the runs left
running by an earlier console or `up` are offered in one dialog: attach one, or all of them
with one key, each as a member under its recorded name; other processes (not ours) are
offered for stopping only.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

# Annotations only: the App imports the controllers before its first frame.
if TYPE_CHECKING:
    from vllm_console.app import VllmConsoleApp
    from vllm_console.controllers.server import DialogMaker, ServerController
    from vllm_console.core.serve.leftovers import Leftover
    from vllm_console.core.serve.runs import RunInfo

QUIT_STATE_WAIT = 2.0  # seconds a quit waits for the panes' last states after the stop


class Leaving:
    """The quit question and the leftovers dialog, for `servers`' fleet."""

    def __init__(
        self, app: VllmConsoleApp, dialogs: DialogMaker, servers: ServerController
    ) -> None:
        self._app = app
        self._dialogs = dialogs
        self._servers = servers
        self._attaching = asyncio.Lock()
        self._attach_ours = False

    # -- quit ----------------------------------------------------------------------------------

    def quit(self) -> None:
        """Leave; while members run, ask first: leave them running, or stop them."""
        self._app.run_worker(
            self._quit_flow(), name="quit_flow", group="quit", exclusive=True, exit_on_error=False
        )

    async def _quit_flow(self) -> None:
        running = self._servers.running()
        if not running:
            self._app.exit()
            return
        names = [pane.server_name for pane in running]
        choice = await self._app.push_screen_wait(self._dialogs.quit(names))
        if choice == "leave":
            self.leave_all()
        elif choice == "stop":
            await self.stop_all()

    def leave_all(self) -> None:
        """Leave every running member running and exit: the quit dialog's "leave"."""
        for pane in self._servers.running():
            if pane.attached is None:
                # one that cannot be left (a stop was asked) ends with the console
                pane.detach()
        self._app.exit()

    async def stop_all(self) -> None:
        """Stop every running member, wait for them and their GPU memory, and exit."""
        app, servers = self._app, self._servers
        running = servers.running()
        if running:
            app.notify("Stopping the server…" if len(running) == 1 else "Stopping the servers…")
        for pane in running:
            servers.stop_pane(pane)
        for pane in running:
            await pane.wait_idle()
        for _ in range(40):  # the panes' last state messages start the memory check
            if not servers.running():
                break
            await asyncio.sleep(QUIT_STATE_WAIT / 40)
        guard = servers.guard
        if running and guard is not None:  # held memory is shown (and can be killed) first
            await guard.idle.wait()
        app.exit()

    # -- what earlier runs left -----------------------------------------------------------------

    def find_leftovers(self, *, attach_ours: bool = False) -> None:
        """Look (in a thread) for servers earlier consoles left running; offer to attach.
        `attach_ours`: attach the runs left running without asking (a browser session
        reopened), offering only the rest."""
        self._attach_ours = attach_ours
        self._app.run_worker(
            self._find_leftovers,
            name="find_leftovers",
            group="leftovers",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def _find_leftovers(self) -> None:
        from vllm_console.core.serve.leftovers import find_leftovers

        found = find_leftovers(self._app.settings)
        if found:
            self._app.call_from_thread(self._show_leftovers, found)

    def _show_leftovers(self, found: list[Leftover]) -> None:
        # The look ran while a fleet file's servers may have started: those are ours.
        app = self._app
        panes = app.fleet.panes.values() if app.panes_ready.is_set() else ()
        ours = {group for pane in panes if (group := pane.process_group) is not None}
        found = [item for item in found if item.pgid not in ours]
        if self._attach_ours:
            for item in found:
                if item.attachable and item.run is not None:
                    self.attach(item.run)
            found = [item for item in found if not item.attachable]
        if found:
            app.push_screen(self._dialogs.leftovers(app.settings, found, self.attach))

    def attach(self, run: RunInfo) -> None:
        """Follow `run` as a member of the fleet (the dialog hands them over one by one)."""
        self._app.run_worker(self._attach(run), name="attach", group="attach", exit_on_error=False)

    async def _attach(self, run: RunInfo) -> None:
        await self._app.panes_ready.wait()  # the fleet panel joins after the first frame
        async with self._attaching:  # one at a time: each name is unique among the previous
            await self._servers.attach(run)
