"""Servers left from earlier runs, found at start-up: stop them, or attach to those left
running (one at a time, or all with one key), each becoming a member of the fleet.

What counts as a leftover, and how they are found, is `core.serve.leftovers`. A run chosen
is handed to `attach` at once (the fleet follows it while the dialog stays for the rest).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from vllm_console.config import Settings
from vllm_console.core.serve.attach import stop_any
from vllm_console.core.serve.leftovers import Leftover
from vllm_console.core.serve.runs import RunInfo
from vllm_console.core.text import visible
from vllm_console.widgets.worker_errors import ReportsWorkerErrors


class LeftoversScreen(ReportsWorkerErrors, ModalScreen[None]):
    """Lists leftovers; closes once none is left, or on escape."""

    DEFAULT_CSS = Path(__file__).with_name("leftovers.tcss").read_text(encoding="utf-8")

    BINDINGS = [
        Binding(
            "s",
            "stop",
            "Stop it",
            id="leftovers.stop",
            tooltip="Stop the selected server left from an earlier run",
        ),
        Binding(
            "a",
            "attach",
            "Attach",
            id="leftovers.attach",
            tooltip="Follow the selected server as a member of the fleet, as if launched here",
        ),
        Binding(
            "A",
            "attach_all",
            "Attach all",
            id="leftovers.attach_all",
            tooltip="Follow every server left running by an earlier console or `up`",
        ),
        Binding(
            "escape",
            "close",
            "Close",
            id="leftovers.close",
            tooltip="Go on to the console; those not attached to are left running",
        ),
    ]

    def __init__(
        self,
        settings: Settings,
        leftovers: list[Leftover],
        attach: Callable[[RunInfo], None],
    ) -> None:
        """`attach(run)` follows a run left running as a member of the fleet."""
        super().__init__()
        self._settings = settings
        self._items = {str(item.pgid): item for item in leftovers}
        self._attach_run = attach

    def compose(self) -> ComposeResult:
        with Vertical(id="leftovers-dialog"):
            yield Static("Servers left from earlier runs", id="leftovers-title")
            yield Static(
                "They hold memory (and maybe the port). Stop them (SIGTERM, then SIGKILL "
                "of the process group), or attach to those left running: each becomes a "
                "server of the console's fleet, under its name.",
                id="leftovers-note",
            )
            yield DataTable(id="leftovers-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, key in (("Group", "group"), ("State", "state"), ("What", "what")):
            table.add_column(label, key=key)
        for key, item in self._items.items():
            # What a process is comes from /proc (a program names itself): Text, never markup.
            table.add_row(str(item.pgid), "running", Text(visible(item.what)), key=key)
        table.focus()

    def _selected(self) -> Leftover | None:
        table = self.query_one(DataTable)
        if not self._items or table.cursor_row < 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self._items.get(str(key))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "attach":
            item = self._selected() if self.is_mounted else None
            return True if item is not None and item.attachable else None
        if action == "attach_all":
            return True if any(item.attachable for item in self._items.values()) else None
        if action == "stop":
            return True if self._items else None
        return True

    @on(DataTable.RowHighlighted)
    def _moved(self) -> None:
        self.refresh_bindings()

    def action_stop(self) -> None:
        item = self._selected()
        if item is not None:
            self.query_one(DataTable).update_cell(str(item.pgid), "state", "stopping…")
            self._stop(item)

    @work(group="leftover-stop", exit_on_error=False)
    async def _stop(self, item: Leftover) -> None:
        report = await stop_any(item.pgid, self._settings.stop_timeout)
        table = self.query_one(DataTable)
        if report.clean:
            if item.run is not None:
                from vllm_console.core.serve.attach import stop as stop_run

                await stop_run(self._settings, item.run.id)  # records it as stopped
            self._forget(item)
            self.notify(f"Stopped process group {item.pgid} in {report.seconds:.1f} s.")
        else:
            table.update_cell(str(item.pgid), "state", "still alive")
            self.notify(f"Could not stop group {item.pgid}.", severity="error")
        self.refresh_bindings()

    def action_attach(self) -> None:
        item = self._selected()
        if item is not None and item.run is not None and item.attachable:
            self._forget(item)
            self._attach_run(item.run)

    def action_attach_all(self) -> None:
        for item in list(self._items.values()):
            if item.run is not None and item.attachable:
                self._forget(item)
                self._attach_run(item.run)

    def _forget(self, item: Leftover) -> None:
        """Off the list (stopped, or to be attached); the dialog closes once it is empty."""
        self.query_one(DataTable).remove_row(str(item.pgid))
        del self._items[str(item.pgid)]
        self.refresh_bindings()
        if not self._items:
            self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
