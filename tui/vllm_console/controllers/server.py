"""The server's glue: launching, stopping, quitting, and what a server leaves on the GPUs.

The App passes this controller the server pane's and the GPU strip's messages and the keys
that concern the server; it opens the dialogs around a launch (the launch dialog, the quit
question, the runs an earlier console left running) and keeps the GPU-release guard
(`gpu_guard.py`) fed: the server's process tree, read every few seconds off the UI thread,
and the strip's snapshots. Widgets stay unaware of each other: everything goes through the
App's accessors (`app.server`, `app.gauges`, ...), which this module only calls.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING, Protocol

from vllm_console.core.serve.diagnose import Phase

# Annotations only: the App imports this module before its first frame.
if TYPE_CHECKING:
    from collections.abc import Callable

    from textual.screen import Screen

    from vllm_console.app import VllmConsoleApp
    from vllm_console.config import Settings
    from vllm_console.controllers.gpu_guard import AskToKill, GpuGuard
    from vllm_console.core.catalog.entry import ModelEntry
    from vllm_console.core.fleet.model import FleetContext
    from vllm_console.core.gpu.nvml import GpuSnapshot
    from vllm_console.core.serve.leftovers import Leftover
    from vllm_console.core.serve.runs import RunInfo
    from vllm_console.core.serve.spec import LaunchRequest, LaunchSpec
    from vllm_console.screens.quit import QuitChoice
    from vllm_console.widgets.gpu.gauges import GpuGauges
    from vllm_console.widgets.server.status import ServerState

PIDS_INTERVAL = 2.0  # seconds between reads of the server's process tree (for the GPU strip)
QUIT_STATE_WAIT = 2.0  # seconds a quit waits for the pane's last state after the stop


def server_name(state: ServerState) -> str:
    """The name the GPU strip and the guard know the server by."""
    return state.request.server_name if state.request is not None else state.label or "server"


class DialogMaker(Protocol):
    """The dialogs this controller opens; the App passes one in (`screens.dialogs.Dialogs`),
    since controllers sit below screens in the layers and never import them."""

    def launch(
        self,
        settings: Settings,
        *,
        key: str,
        model_id: str,
        path: str,
        saved: LaunchSpec | None,
        fix: tuple[str, object] | None,
        entry: ModelEntry | None,
        gpus: Callable[[], GpuSnapshot | None],
        kill: Callable[[list[int]], None] | None,
        fleet: FleetContext,
    ) -> Screen[LaunchRequest | None]: ...

    def quit(self, label: str) -> Screen[QuitChoice | None]: ...

    def leftovers(self, settings: Settings, found: list[Leftover]) -> Screen[RunInfo | None]: ...

    @property
    def ask_to_kill(self) -> AskToKill: ...


class ServerController:
    """Launch, stop, quit and leftovers for `app`, and the GPU guard that watches a stop."""

    def __init__(self, app: VllmConsoleApp, dialogs: DialogMaker) -> None:
        self._app = app
        self._dialogs = dialogs
        self.guard: GpuGuard | None = None  # with the GPU strip, after the first frame

    def panes_mounted(self) -> None:
        """The server pane and the GPU strip are in: watch the server's processes."""
        from vllm_console.controllers.gpu_guard import GpuGuard

        self.guard = GpuGuard(self._app, self._dialogs.ask_to_kill)
        self._app.set_interval(PIDS_INTERVAL, self._refresh_pids, name="server-pids")

    # -- messages the App passes on -----------------------------------------------------------

    def state_changed(self, before: ServerState, state: ServerState) -> None:
        """The server pane's new state: on Ready the chat and the metrics follow the server;
        once nothing of ours runs, the guard checks that the GPU memory comes back."""
        if state.phase is Phase.READY and before.phase is not Phase.READY and state.url:
            self._point_at_server(state)
        if state.running:
            return
        from vllm_console.widgets.gpu.gauges import GpuGauges

        name = server_name(state)
        for gauges in self._app.query("#gpus").results(GpuGauges):
            baseline = gauges.forget(name)
            ended = before.running and state.phase in (Phase.STOPPED, Phase.FAILED)
            if ended and self.guard is not None:  # does the memory come back?
                self.guard.server_ended(name, baseline)

    def gauges_updated(self, message: GpuGauges.Updated) -> None:
        if self.guard is not None:
            self.guard.seen(message.shares)
            self.guard.snapshot(message.snapshot)

    def _point_at_server(self, state: ServerState) -> None:
        """The chat and the metrics stay pointed at it after it stops."""
        assert state.url is not None
        settings, request = self._app.settings, state.request
        model: str | None
        if request is not None:
            model = request.spec.served_model_name or request.spec.model
            api_key = request.spec.api_key or settings.api_key
        else:  # attached to an earlier run
            model, api_key = state.label or None, settings.api_key
        self._app.chat.point_at(state.url, api_key, model, source="local server")
        self._app.metrics.point_at(state.url, api_key)

    # -- the server's processes, for the GPU strip and the guard -------------------------------

    def _refresh_pids(self) -> None:
        pid = self._app.server.pid if self._app.server_state.running else None
        if pid is not None:
            self._app.run_worker(
                partial(self._read_pids, pid),
                name="read_server_pids",
                group="server-pids",
                thread=True,
                exclusive=True,
                exit_on_error=False,
            )

    def _read_pids(self, pid: int) -> None:
        from vllm_console.core.serve.proctable import session_pids

        pids = frozenset(session_pids(pid)) | {pid}
        self._app.call_from_thread(self._set_pids, pid, pids)

    def _set_pids(self, pid: int, pids: frozenset[int]) -> None:
        state = self._app.server_state
        if state.running and self._app.server.pid == pid:
            self._app.gauges.set_pids(server_name(state), pids)
            if self.guard is not None:
                self.guard.add_pids(server_name(state), pids)

    # -- launching --------------------------------------------------------------------------

    def open_launch(self, entry: ModelEntry) -> None:
        """The launch dialog for `entry`, unless a server runs already."""
        if self._app.server_state.running:
            self._app.notify("A server is running: stop it (s) before launching another.")
            return
        self._launch_dialog(entry.key, entry.id, str(entry.path))

    def relaunch_fix(self) -> None:
        """After a failure with a known fix: the launch dialog with that field changed."""
        state = self._app.server_state
        finding, request = state.fix, state.request
        if finding is None or finding.fix is None or request is None:
            return
        fix = (finding.fix.field, finding.fix.value)
        self._launch_dialog(request.model_key, request.model_id, request.model_path, fix)

    def _launch_dialog(
        self, key: str, model_id: str, path: str, fix: tuple[str, object] | None = None
    ) -> None:
        self._app.run_worker(
            self._run_launch_dialog(key, model_id, path, fix),
            name="launch_dialog",
            group="launch-dialog",
            exclusive=True,
            exit_on_error=False,
        )

    async def _run_launch_dialog(
        self, key: str, model_id: str, path: str, fix: tuple[str, object] | None
    ) -> None:
        from vllm_console.core.fleet.model import FleetContext
        from vllm_console.core.serve.spec import load_saved_specs

        app = self._app
        saved = await asyncio.to_thread(load_saved_specs, app.settings.specs_file)
        guard = self.guard
        screen = self._dialogs.launch(
            app.settings,
            key=key,
            model_id=model_id,
            path=path,
            saved=saved.get(key),
            fix=fix,
            entry=next((e for e in app.browser.entries if e.key == key), None),
            gpus=lambda: app.gauges.snapshot,
            kill=guard.kill if guard is not None else None,
            fleet=FleetContext(),
        )
        request = await app.push_screen_wait(screen)
        if request is not None:
            self._launch(request)

    def _launch(self, request: LaunchRequest) -> None:
        self._app.gauges.launching(request.server_name)  # before it takes any memory
        if self.guard is not None:
            self.guard.launched(request.server_name)
        self._app.server.launch(request)
        self._app.show_tab("tab-server")

    # -- stop and quit ------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the server, reading its processes first: a worker started since the last
        periodic read would otherwise be unknown to the memory check after the stop (its
        memory could be named only as a change, with no PID to kill). One pass over /proc."""
        server = self._app.server
        pid = server.pid if self._app.server_state.running else None
        if pid is not None and self.guard is not None:
            from vllm_console.core.serve.proctable import session_pids

            name = server_name(self._app.server_state)
            self.guard.add_pids(name, frozenset(session_pids(pid)) | {pid})
        server.stop()

    def quit(self) -> None:
        """Leave; while a server of ours runs, ask first: leave it running, or stop it."""
        self._app.run_worker(
            self._quit_flow(), name="quit_flow", group="quit", exclusive=True, exit_on_error=False
        )

    async def _quit_flow(self) -> None:
        app = self._app
        state = app.server_state
        if not state.running or state.attached_run is not None:
            app.exit()
            return
        choice = await app.push_screen_wait(self._dialogs.quit(state.label))
        if choice == "leave" and app.server.detach():
            app.exit()
        elif choice == "stop":
            app.notify("Stopping the server…")
            self.stop()
            await app.server.wait_idle()
            for _ in range(40):  # the pane's last state message starts the memory check
                if not app.server_state.running:
                    break
                await asyncio.sleep(QUIT_STATE_WAIT / 40)
            if self.guard is not None:  # held memory is shown (and can be killed) first
                await self.guard.idle.wait()
            app.exit()

    # -- what earlier runs left ---------------------------------------------------------------

    def find_leftovers(self) -> None:
        """Look (in a thread) for servers an earlier console left running; offer to attach."""
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
        screen = self._dialogs.leftovers(self._app.settings, found)
        self._app.push_screen(screen, self._attach_to_run)

    def _attach_to_run(self, run: RunInfo | None) -> None:
        if run is not None:
            self._app.server.attach(run)
            self._app.show_tab("tab-server")
