"""The run archive: every launch, newest first; a chosen run's whole log, read-only."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from vllm_console.config import Settings
from vllm_console.core.serve.attach import read_from
from vllm_console.core.serve.runs import RunArchive, RunInfo
from vllm_console.core.text import visible
from vllm_console.widgets.server.log_view import BufferedLog
from vllm_console.widgets.worker_errors import ReportsWorkerErrors


def run_row(run: RunInfo) -> tuple[str, str, str, str]:
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started))
    model = run.model.rstrip("/").rsplit("/", 1)[-1] if run.model.startswith("/") else run.model
    return started, model, run.status, run.reason or ""


class RunsScreen(ReportsWorkerErrors, Screen[None]):
    """Runs on the left, the highlighted run's log on the right."""

    DEFAULT_CSS = Path(__file__).with_name("runs.tcss").read_text(encoding="utf-8")

    BINDINGS = [
        Binding("escape", "close", "Back", id="runs.close", tooltip="Back to the console"),
        Binding("h", "close", "Back", show=False, id="runs.close_h", tooltip="Back to the console"),
        Binding(
            "w",
            "toggle_problems",
            "Warnings",
            id="runs.problems",
            tooltip="In the run's log: warnings and errors only, or all lines",
        ),
    ]

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._settings = settings
        self._runs: dict[str, RunInfo] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="runs-main"):
            with Vertical(id="runs-side"):
                yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
                yield Static("", id="runs-info")
            yield BufferedLog(id="runs-log")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "run history"
        table = self.query_one(DataTable)
        for label, key in (("Started", "started"), ("Model", "model"), ("Status", "status")):
            table.add_column(label, key=key)
        table.focus()
        self._load_runs()

    @work(thread=True, exclusive=True, group="runs-list", exit_on_error=False)
    def _load_runs(self) -> None:
        runs = RunArchive(self._settings.runs_dir).all()
        self.app.call_from_thread(self._show_runs, runs)

    def _show_runs(self, runs: list[RunInfo]) -> None:
        self._runs = {run.id: run for run in runs}
        table = self.query_one(DataTable)
        for run in runs:
            # Text, not str (which a DataTable reads as markup): the archive is files on disk.
            table.add_row(*(Text(visible(cell)) for cell in run_row(run)[:3]), key=run.id)
        if not runs:
            self.query_one("#runs-info", Static).update(
                "No runs yet: launched servers appear here."
            )

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        run = self._runs.get(str(event.row_key.value))
        if run is not None:
            argv = " ".join(run.argv)
            lines = [run.id, run_row(run)[3], str(run.dir), "", f"$ {argv}"]
            info = Content("\n").join(Content(visible(line)) for line in lines)
            self.query_one("#runs-info", Static).update(info)
            self._load_log(run)

    @work(thread=True, exclusive=True, group="runs-log", exit_on_error=False)
    def _load_log(self, run: RunInfo) -> None:
        lines, _ = read_from(run.log_path, 0)
        self.app.call_from_thread(self.query_one(BufferedLog).reset, lines)

    def action_toggle_problems(self) -> None:
        log = self.query_one(BufferedLog)
        log.problems_only = not log.problems_only

    def action_close(self) -> None:
        self.dismiss(None)
