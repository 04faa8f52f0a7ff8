"""The fleet panel: the members' table over the selected member's pane.

Each local member has its own `ServerPane` (its own session, log and state), mounted in a
`ContentSwitcher` that shows the selected one; a remote member (a URL someone else serves)
has a `RemotePane` there, which probes it (health, version, models) and marks it down when
it stops answering. The table's cursor is the selection: moving it switches the pane and
posts `FleetPanel.Selected` (the App points the chat and metrics tabs at that member). The
panes' `StateChanged` messages pass through here on their way up: each updates its row.
While a member is ready (or remote) and the table is on screen, an async worker reads the
/metrics of every such member each POLL_INTERVAL_S (`poll.py`), so the table shows load, KV
cache use, generation speed and health; an endpoint that does not answer shows dashes, never
a dialog. With none to read, the worker ends (an idle console polls nothing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import ContentSwitcher, DataTable, Static
from textual.worker import Worker

from vllm_console.config import Settings
from vllm_console.core.fleet.model import Member
from vllm_console.widgets.fleet.cells import MemberRow, Reading
from vllm_console.widgets.fleet.poll import POLL_INTERVAL_S, Poll, Target
from vllm_console.widgets.fleet.remote import RemotePane
from vllm_console.widgets.fleet.table import FleetTable
from vllm_console.widgets.server.pane import ServerPane
from vllm_console.widgets.shown import is_shown
from vllm_console.widgets.worker_errors import ReportsWorkerErrors

EMPTY = "No server launched. Select a model and press enter to launch it."


class FleetPanel(ReportsWorkerErrors, Vertical):
    """Every member: a row each, and the selected one's pane."""

    DEFAULT_CSS = Path(__file__).with_name("panel.tcss").read_text(encoding="utf-8")

    class Selected(Message):
        """The table's cursor moved to another member."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def __init__(self, settings: Settings, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._settings = settings
        self._widgets: dict[str, Widget] = {}  # name -> its pane, in the order added
        self._remotes: dict[str, Member] = {}
        self._served: dict[str, str] = {}  # a remote member's first model, once probed
        self._readings: dict[str, Reading] = {}
        self._selected: str | None = None
        self._added = 0  # for the panes' ids: names may hold characters ids may not
        self._poller: Worker[None] | None = None

    def compose(self) -> ComposeResult:
        yield FleetTable(id="fleet-table")
        with ContentSwitcher(id="fleet-panes", initial="fleet-empty"):
            yield Static(EMPTY, id="fleet-empty")

    def on_mount(self) -> None:
        self.query_one(FleetTable).display = False
        self.set_interval(1.0, self._tick, name="fleet-clock")

    # -- what the fleet holds ---------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        """Every member's name, local and remote, in the order they joined."""
        return tuple(self._widgets)

    @property
    def panes(self) -> Mapping[str, ServerPane]:
        """The local members' panes by name."""
        return {n: w for n, w in self._widgets.items() if isinstance(w, ServerPane)}

    @property
    def remotes(self) -> Mapping[str, Member]:
        return dict(self._remotes)

    def pane(self, name: str) -> ServerPane | None:
        widget = self._widgets.get(name)
        return widget if isinstance(widget, ServerPane) else None

    @property
    def selected(self) -> str | None:
        return self._selected

    @property
    def selected_pane(self) -> ServerPane | None:
        return self.pane(self._selected) if self._selected is not None else None

    def focus_log(self) -> None:
        """Focus the selected server's log, or the table when no local server is selected."""
        pane = self.selected_pane
        (pane.log_view if pane is not None else self.query_one(FleetTable)).focus()

    def reading(self, name: str) -> Reading | None:
        """The member's last /metrics reading, while it is read."""
        return self._readings.get(name)

    # -- adding and selecting ---------------------------------------------------------------

    async def add_local(self, name: str) -> ServerPane:
        """A new local member's pane (it launches or attaches when told)."""
        pane = ServerPane(self._settings, server_name=name, id=self._next_id())
        await self._add(name, pane)
        return pane

    async def add_remote(self, member: Member) -> None:
        """A row for a server something else runs (`member.url`); its /metrics is read."""
        if member.url is None:
            raise ValueError(f"{member.name} is not a remote member")
        pane = RemotePane(member, id=self._next_id(), classes="fleet-remote")
        self._remotes[member.name] = member
        await self._add(member.name, pane)
        self._start_polling()

    def on_remote_pane_state_changed(self, message: RemotePane.StateChanged) -> None:
        """A remote member's probe: the models it serves name its row (and the chat's)."""
        message.stop()
        member = self._remotes.get(message.name)
        models = message.state.models
        if member is None or not models or member.spec is not None:
            return
        self._served[message.name] = models[0]
        self._show_row(message.name)

    def _next_id(self) -> str:
        self._added += 1
        return f"member-{self._added}"

    async def _add(self, name: str, widget: Widget) -> None:
        if name in self._widgets:
            raise ValueError(f"a member named {name} is in the fleet already")
        self._widgets[name] = widget
        widget.display = False  # the switcher shows only the selected member's
        await self.query_one("#fleet-panes", ContentSwitcher).mount(widget)
        table = self.query_one(FleetTable)
        table.display = True
        self._show_row(name)

    def select(self, name: str) -> None:
        """Show `name`'s pane and move the table's cursor to its row."""
        if name in self._widgets:
            self.query_one(FleetTable).move_to(name)
            self._choose(name)

    def _choose(self, name: str) -> None:
        widget = self._widgets.get(name)
        if widget is None or name == self._selected:
            return
        self._selected = name
        self.query_one("#fleet-panes", ContentSwitcher).current = widget.id
        self.post_message(self.Selected(name))

    @on(DataTable.RowHighlighted, "#fleet-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key.value is not None:
            self._choose(event.row_key.value)

    # -- the rows -----------------------------------------------------------------------------

    def on_server_pane_state_changed(self, message: ServerPane.StateChanged) -> None:
        # not stopped: the App follows the members' states too
        if message.name in self._widgets:
            self._show_row(message.name)
            self._start_polling()

    def row(self, name: str) -> MemberRow:
        """What the table shows of member `name`."""
        remote = self._remotes.get(name)
        reading = self._readings.get(name)
        if remote is not None:
            model = self._served.get(name, "")
            return MemberRow(name, model, remote.url or "", reading=reading)
        pane = self.pane(name)
        assert pane is not None, name
        state, request, run = pane.state, pane.state.request, pane.attached
        pid = pane.process_group
        gpus: tuple[int, ...] | None = None
        port: int | None = None
        model = ""
        if request is not None:
            model, gpus, port = request.model_id, request.spec.gpus, request.spec.port
        elif run is not None:
            model, gpus, port = run.model, run.gpus, run.port
        where = f"pid {pid}" if pid is not None else ""
        return MemberRow(name, model, where, gpus, port, state, reading)

    def _show_row(self, name: str) -> None:
        row = self.row(name)
        if not row.polled:
            self._readings.pop(name, None)  # a stopped member's last load is not its load
            row = replace(row, reading=None)
        self.query_one(FleetTable).show(row)

    def _tick(self) -> None:
        if not is_shown(self):
            return  # the clocks catch up once the tab is shown
        now = time.monotonic()
        table = self.query_one(FleetTable)
        for name, pane in self.panes.items():
            if pane.state.running:
                table.show(self.row(name), now)

    # -- /metrics -----------------------------------------------------------------------------

    def _targets(self) -> dict[str, Target]:
        """The members whose /metrics is read now: ready local ones and every remote one."""
        targets = {n: Target(m.url, m.api_key) for n, m in self._remotes.items() if m.url}
        for name, pane in self.panes.items():
            state = pane.state
            if self.row(name).polled and state.url is not None:
                request = state.request
                key = request.spec.api_key if request is not None else None
                targets[name] = Target(state.url, key or self._settings.api_key)
        return targets

    def _start_polling(self) -> None:
        """Read /metrics while a member can answer: the worker ends when none is left."""
        if self._poller is None and self._targets():
            self._poller = self._poll()

    @work(group="fleet-metrics", exit_on_error=False)
    async def _poll(self) -> None:
        try:
            async with Poll() as poll:
                while targets := self._targets():
                    if not is_shown(self):  # nobody looks: nothing to read
                        await asyncio.sleep(POLL_INTERVAL_S)
                        continue
                    readings = await poll.read(targets)
                    polled = self._targets()  # a member may have stopped meanwhile
                    for name, reading in readings.items():
                        if name in polled:
                            self._readings[name] = reading
                            self._show_row(name)
                    await asyncio.sleep(POLL_INTERVAL_S)
        finally:
            self._poller = None
