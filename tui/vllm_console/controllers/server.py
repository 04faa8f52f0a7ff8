"""The fleet's glue: launching, stopping and relaunching members, and following the selected.

The App passes this controller the server panes' and the GPU strip's messages and the keys
that concern the servers; it opens the dialogs around a launch and keeps the GPU-release
guard (`gpu_guard.py`) fed with the strip's snapshots. Each launch adds a member to the fleet
(`widgets.fleet.FleetPanel`), named after its request and unique among the members (a member
that no longer runs is launched again under its own name). The selected member is the one
the keys act on, whose state the header and `app.server_state` show, and at which the chat,
metrics and bench tabs point (`bench.py`). The members' processes are `fleet.py`'s;
quitting and what earlier consoles left running are `leaving.py`'s. Widgets stay unaware of
each other: everything goes through the App's accessors (`app.fleet`, `app.gauges`, ...),
which this module calls.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from vllm_console.controllers.fleet import FleetProcesses
from vllm_console.controllers.fleet_file import FleetFiles
from vllm_console.controllers.leaving import Leaving
from vllm_console.controllers.remotes import Remotes
from vllm_console.core.serve.diagnose import Phase

# Annotations only: the App imports this module before its first frame.
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from pathlib import Path

    from textual.app import SystemCommand
    from textual.screen import Screen

    from vllm_console.app import VllmConsoleApp
    from vllm_console.config import Settings
    from vllm_console.controllers.gpu_guard import AskToKill, GpuGuard
    from vllm_console.core.catalog.entry import ModelEntry
    from vllm_console.core.fleet.model import FleetContext, Member
    from vllm_console.core.gpu.nvml import GpuSnapshot
    from vllm_console.core.serve.leftovers import Leftover
    from vllm_console.core.serve.runs import RunInfo
    from vllm_console.core.serve.spec import LaunchRequest, LaunchSpec
    from vllm_console.screens.quit import QuitChoice
    from vllm_console.widgets.fleet.panel import FleetPanel
    from vllm_console.widgets.gpu.gauges import GpuGauges
    from vllm_console.widgets.server.pane import ServerPane
    from vllm_console.widgets.server.status import ServerState


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
        tokenizer: str | None = None,
    ) -> Screen[LaunchRequest | None]: ...

    def quit(self, names: Sequence[str]) -> Screen[QuitChoice | None]: ...

    def confirm(self, title: str, text: str, yes: str) -> Screen[bool]: ...

    def fleet_path(self, cwd: Path) -> Screen[Path | None]: ...

    def add_endpoint(self, taken: Iterable[str]) -> Screen[Member | None]: ...

    def leftovers(
        self, settings: Settings, found: list[Leftover], attach: Callable[[RunInfo], None]
    ) -> Screen[None]: ...

    @property
    def ask_to_kill(self) -> AskToKill: ...


class ServerController:
    """Launch, stop and relaunch members, and the GPU guard that watches a stop."""

    def __init__(
        self, app: VllmConsoleApp, dialogs: DialogMaker, members: Sequence[Member] = ()
    ) -> None:
        """`members`: a fleet file's, added once the fleet panel is in."""
        self._app = app
        self._dialogs = dialogs
        self._members = tuple(members)
        self.guard: GpuGuard | None = None  # with the GPU strip, after the first frame
        self.processes = FleetProcesses(app, lambda: self.guard)
        self.leaving = Leaving(app, dialogs, self)
        self.files = FleetFiles(app, dialogs, self)
        self.remotes = Remotes(app, dialogs)
        self._states: dict[str, ServerState] = {}  # each member's, as its last message said
        self._panel: FleetPanel | None = None

    def panes_mounted(self) -> None:
        """The fleet panel and the GPU strip are in: watch the members' processes, and
        launch the fleet file's."""
        from vllm_console.controllers.gpu_guard import GpuGuard

        self.guard = GpuGuard(self._app, self._dialogs.ask_to_kill)
        self.processes.start()
        self._app.run_worker(self.remotes.add_base_url(), name="base_url", exit_on_error=False)
        if self._members:
            self.files.open(self._members)

    # -- the members' states ------------------------------------------------------------------

    def states(self) -> list[ServerState]:
        """Every local member's state (for the header's sum)."""
        return list(self._states.values())

    def _fleet(self) -> FleetPanel | None:
        """The fleet panel; None before it is mounted and while the App closes (a pane's last
        message may arrive then)."""
        from vllm_console.widgets.fleet.panel import FleetPanel

        # Found once: asked for with every change of the keys; a query walks the whole DOM.
        if self._panel is None or not self._panel.is_attached:
            self._panel = next(iter(self._app.query("#fleet").results(FleetPanel)), None)
        return self._panel

    def running(self) -> list[ServerPane]:
        """The panes of the members that may run (a stop applies)."""
        fleet = self._fleet() if self._app.panes_ready.is_set() else None
        panes = fleet.panes.values() if fleet is not None else ()
        return [pane for pane in panes if pane.state.running]

    def state_changed(self, name: str, state: ServerState) -> None:
        """A member's new state: the selected one's is the App's; on Ready the chat and the
        metrics follow it if it is selected; once nothing of ours runs, the guard checks
        that the GPU memory comes back."""
        from vllm_console.widgets.server.status import ServerState

        before = self._states.get(name, ServerState())
        self._states[name] = state
        fleet = self._fleet()
        if fleet is None:
            return
        if name == fleet.selected:
            self._app.server_state = state
            if state.phase is Phase.READY and before.phase is not Phase.READY:
                self._point_at(name)
        if before.running and not state.running:
            self._ended(name, state)
            self.processes.forget(name)

    def _ended(self, name: str, state: ServerState) -> None:
        """One member stopped: the guard checks that *its* memory comes back (another
        member growing or shrinking meanwhile does not confuse it)."""
        from vllm_console.widgets.gpu.gauges import GpuGauges

        for gauges in self._app.query("#gpus").results(GpuGauges):
            baseline = gauges.forget(name)
            if state.phase in (Phase.STOPPED, Phase.FAILED) and self.guard is not None:
                self.guard.server_ended(name, baseline)

    def selected(self, name: str) -> None:
        """The table's cursor moved to `name`: its state is shown, the chat points at it."""
        from vllm_console.widgets.server.status import ServerState

        pane = self._app.fleet.pane(name)
        self._app.server_state = pane.state if pane is not None else ServerState()
        self._point_at(name)

    def gauges_updated(self, message: GpuGauges.Updated) -> None:
        if self.guard is not None:
            self.guard.seen(message.shares)
            self.guard.snapshot(message.snapshot)

    def _point_at(self, name: str) -> None:
        """The chat, the metrics and the bench at a ready member (`controllers.bench`)."""
        from vllm_console.controllers.bench import point_tabs

        point_tabs(self._app, name)

    def act(self, what: str) -> None:
        """A server key, by its name (the App's bindings call `server('stop')` and so on)."""
        actions: dict[str, Callable[[], None]] = {
            "stop": self.stop,
            "stop_all": self.stop_all,
            "relaunch": self.relaunch,
            "relaunch_fix": self.relaunch_fix,
            "save_fleet": self.files.save,
            "add_endpoint": self.remotes.add_endpoint,
        }
        actions[what]()

    def commands(self) -> Iterator[SystemCommand]:
        """The fleet's entries in the command palette."""
        from textual.app import SystemCommand

        for what, title, help_text in (
            ("relaunch", "Relaunch server", "The selected server again, with its last settings"),
            ("stop_all", "Stop all servers", "Every server of the fleet (asks first)"),
            ("save_fleet", "Save fleet", "Write every server to a fleet file"),
        ):
            if self.allows(what):
                yield SystemCommand(title, help_text, lambda what=what: self.act(what))

    def allows(self, action: str) -> bool | None:
        """`check_action` for the servers' keys: None greys a key out, False hides it (the
        fleet's keys show only when they apply, to keep the footer short)."""
        state = self._app.server_state
        if action == "stop":
            return True if state.running else None
        if action == "stop_all":
            return bool(self.running())
        if action == "relaunch":
            return state.request is not None
        if action == "relaunch_fix":
            return state.fix is not None
        if action == "save_fleet":
            fleet = self._fleet()
            return fleet is not None and bool(fleet.names)
        return True

    # -- launching --------------------------------------------------------------------------

    def open_launch(self, entry: ModelEntry) -> None:
        """The launch dialog for `entry`: a new member once launched."""
        self._launch_dialog(entry.key, entry.id, str(entry.path))

    def relaunch_fix(self) -> None:
        """After the selected member failed with a known fix: the dialog with it applied."""
        state, name = self._app.server_state, self._app.fleet.selected
        finding, request = state.fix, state.request
        if finding is None or finding.fix is None or request is None or name is None:
            return
        fix = (finding.fix.field, finding.fix.value)
        self._launch_dialog(request.model_key, request.model_id, request.model_path, fix, name)

    def _launch_dialog(
        self,
        key: str,
        model_id: str,
        path: str,
        fix: tuple[str, object] | None = None,
        into: str | None = None,
    ) -> None:
        self._app.run_worker(
            self._run_launch_dialog(key, model_id, path, fix, into),
            name="launch_dialog",
            group="launch-dialog",
            exclusive=True,
            exit_on_error=False,
        )

    async def _run_launch_dialog(
        self, key: str, model_id: str, path: str, fix: tuple[str, object] | None, into: str | None
    ) -> None:
        from vllm_console.core.serve.gguf import gguf_tokenizer
        from vllm_console.core.serve.spec import load_saved_specs

        app = self._app
        saved = await asyncio.to_thread(load_saved_specs, app.settings.specs_file)
        entry = next((e for e in app.browser.entries if e.key == key), None)
        tokenizer = await asyncio.to_thread(gguf_tokenizer, entry, app.browser.entries)
        guard = self.guard
        screen = self._dialogs.launch(
            app.settings,
            key=key,
            model_id=model_id,
            path=path,
            saved=saved.get(key),
            fix=fix,
            entry=entry,
            gpus=lambda: app.gauges.snapshot,
            kill=guard.kill if guard is not None else None,
            fleet=self.processes.fleet_context(leaving=into),
            tokenizer=tokenizer,
        )
        request = await app.push_screen_wait(screen)
        if request is not None:
            await self.launch(request, None if request.name else into)

    def name_for(self, request: LaunchRequest) -> str:
        """The member a request becomes: its server name, unless a running member has it."""
        from vllm_console.core.fleet.model import slug, unique_name

        fleet, wanted = self._app.fleet, slug(request.server_name)
        pane = fleet.pane(wanted)
        if pane is not None and not pane.state.running:
            return wanted  # launched again under its own name, in its own pane
        return unique_name(wanted, fleet.names)

    async def launch(self, request: LaunchRequest, into: str | None = None) -> str:
        """Launch `request` as member `into` (a new member by default); its name."""
        fleet = self._app.fleet
        name = into or self.name_for(request)
        pane = fleet.pane(name) or await fleet.add_local(name)
        self._app.gauges.launching(name)  # the GPUs as they were before it takes any
        if self.guard is not None:
            self.guard.launched(name)
        pane.launch(replace(request, name=name))
        fleet.select(name)
        self._app.show_tab("tab-server")
        return name

    def relaunch(self) -> None:
        """The selected member again, with its last request (stopped first if it runs)."""
        name, pane = self._app.fleet.selected, self._app.fleet.selected_pane
        request = pane.state.request if pane is not None else None
        if name is None or pane is None or request is None:
            return
        self._app.run_worker(
            self._relaunch(name, pane, request),
            name="relaunch",
            group=f"relaunch-{name}",
            exclusive=True,
            exit_on_error=False,
        )

    async def _relaunch(self, name: str, pane: ServerPane, request: LaunchRequest) -> None:
        if pane.state.running:
            self.stop_pane(pane)
            await pane.wait_idle()
        await self.launch(request, name)

    async def attach(self, run: RunInfo) -> str:
        """Follow a server an earlier console or `up` left running, as a new member."""
        from vllm_console.core.fleet.model import unique_name

        fleet = self._app.fleet
        name = unique_name(run.server_name, fleet.names)
        pane = await fleet.add_local(name)
        pane.attach(run)
        fleet.select(name)
        self._app.show_tab("tab-server")
        return name

    # -- stopping -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the selected member."""
        pane = self._app.fleet.selected_pane
        if pane is not None and pane.state.running:
            self.stop_pane(pane)

    def stop_pane(self, pane: ServerPane) -> None:
        """Stop one member, reading its processes first: a worker started since the last
        periodic read would otherwise be unknown to the memory check after the stop (its
        memory could be named only as a change, with no PID to kill). One pass over /proc."""
        root = pane.process_group
        if root is not None and self.guard is not None:
            self.guard.add_pids(pane.server_name, self.processes.read_now(root))
        pane.stop()

    def stop_all(self) -> None:
        """Stop every member that runs; with more than one, ask first."""
        running = self.running()
        if len(running) <= 1:
            for pane in running:
                self.stop_pane(pane)
            return
        names = ", ".join(pane.server_name for pane in running)
        screen = self._dialogs.confirm(
            f"Stop all {len(running)} servers?", names, f"Stop all {len(running)}"
        )
        self._app.push_screen(screen, self._stop_all_answered)

    def _stop_all_answered(self, yes: bool | None) -> None:
        if yes:
            for pane in self.running():
                self.stop_pane(pane)

    # -- quitting and leftovers (leaving.py) ------------------------------------------------

    def quit(self) -> None:
        self.leaving.quit()

    def find_leftovers(self) -> None:
        self.leaving.find_leftovers()
