"""The Bench tab: sweep concurrency levels against the selected server, live.

The panel benches its `target` (the selected fleet member, or the configured endpoint; the
App's controllers repoint it with `point_at`). Run reads the form, then an async worker runs
`core.bench.sweep.Sweep` on the App's loop: its events become a progress bar per step, rows of
the results table and findings; the finished record goes into the run archive and onto the
plots, beside an earlier run of the same model. Escape (or ctrl+c, or the Cancel button)
cancels the worker: the sweep's `async with` closes every connection at once, so the server
stops generating; what was measured is kept as a cancelled run. Progress arrives once per
request, so it is stored and drawn on a timer, never per event.

Text from the server, the archive or the user (model names, URLs, errors, paths) is shown as
`Content` through `core.text.visible`, never as markup. Posts `BenchPanel.Finished`.

The panel joins the side tabs right after the first frame, so it stays light until used: the
sweep (HTTP, metrics parsing) is imported by the first run, the plots (plotext) are mounted
when the tab is first shown.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, Input, Static
from textual.worker import Worker

from vllm_console.core.bench.arrivals import describe_rate
from vllm_console.core.bench.form import BadArgument
from vllm_console.core.bench.load import Progress
from vllm_console.core.bench.target import BenchTarget
from vllm_console.core.text import visible
from vllm_console.widgets.bench.form import BenchForm, FormValues
from vllm_console.widgets.bench.results import ResultsTable, StepBar
from vllm_console.widgets.worker_errors import ReportsWorkerErrors

if TYPE_CHECKING:
    from vllm_console.core.bench.sweep import BenchConfig, BenchRecord, Event
    from vllm_console.widgets.bench.plots import BenchPlots

REDRAW_S = 0.1  # progress bars and live counts, at most this often
MAX_FINDINGS = 20


def target_line(target: BenchTarget, running: bool) -> Content:
    """The model, then where it is served: "local server NAME · URL", "endpoint URL"."""
    model = visible(target.model) if target.model else "the served model"
    name = f" {target.server_name}" if target.server_name else ""
    where = visible(f"{target.source}{name} · {target.base_url}")
    state = ("● running  ", "bold $text-success") if running else ("Bench  ", "bold")
    return Content.assemble(state, f"{model}  ", (where, "$text-muted"))


class BenchPanel(ReportsWorkerErrors, VerticalScroll):
    """The form, Run and Cancel, progress, results, plots and export of one endpoint."""

    DEFAULT_CSS = Path(__file__).with_name("panel.tcss").read_text(encoding="utf-8")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel bench", id="bench_cancel",
                tooltip="Stop the benchmark now: every connection closes, what was measured "
                "is kept"),
        Binding("ctrl+c", "cancel", "Cancel bench", show=False, id="bench_cancel_c",
                tooltip="Stop the benchmark now (as escape)"),
    ]  # fmt: skip

    class Finished(Message):
        """A benchmark ended (done, failed or cancelled): its record, kept or not."""

        def __init__(self, record: BenchRecord, kept: Path | None) -> None:
            super().__init__()
            self.record = record
            self.kept = kept

    def __init__(
        self,
        target: BenchTarget,
        *,
        runs_dir: Path,
        cwd: Path,
        vllm_command: str | None = None,
        id: str | None = "bench-panel",
    ) -> None:
        super().__init__(id=id)
        self.target = target
        self.runs_dir = runs_dir
        self.cwd = cwd
        self.vllm_command = vllm_command
        self.record: BenchRecord | None = None  # the last run's, for export and the plots
        self.findings: list[str] = []
        self.bars: dict[int, StepBar] = {}
        self._bar: StepBar | None = None
        self._runner: Worker[None] | None = None

    @property
    def running(self) -> bool:
        return self._runner is not None and self._runner.is_running

    def compose(self) -> ComposeResult:
        yield Static(target_line(self.target, False), id="bench-head")
        yield BenchForm(id="bench-form")
        with Horizontal(classes="bench-row", id="bench-buttons"):
            yield Button("Run", id="bench-run", variant="primary", compact=True)
            yield Button("Cancel", id="bench-cancel", variant="error", compact=True, disabled=True)
        yield Static("", id="bench-note")
        yield Vertical(id="bench-steps")
        yield ResultsTable(id="bench-table")
        yield Static("", id="bench-findings")
        yield Vertical(id="bench-plots-slot")  # the plots join on first show
        with Horizontal(classes="bench-row", id="bench-export-row"):
            yield Input("bench.md", placeholder="file: .md, .csv or .json", id="bench-export-path",
                        compact=True)  # fmt: skip
            yield Button("Export", id="bench-export", compact=True, disabled=True)

    def on_mount(self) -> None:
        self.set_interval(REDRAW_S, self._redraw, name="bench-redraw")

    async def on_show(self) -> None:
        if self.plots is None:
            from vllm_console.widgets.bench.plots import BenchPlots

            await self.query_one("#bench-plots-slot").mount(BenchPlots(id="bench-plots-box"))
            self._show_run()
            self._load_archive()

    @property
    def plots(self) -> BenchPlots | None:
        """The plots, once the tab has been shown."""
        from vllm_console.widgets.bench.plots import BenchPlots

        return next(iter(self.query("#bench-plots-box").results(BenchPlots)), None)

    def _show_run(self) -> None:
        if (plots := self.plots) is not None:
            record = self.record
            plots.show_run(record.steps if record else (), record.model if record else None)

    def point_at(self, target: BenchTarget) -> None:
        """Bench another endpoint from the next Run on (a run under way keeps its own)."""
        if target == self.target:
            return
        self.target = target
        if not self.running:
            self.query_one("#bench-head", Static).update(target_line(target, False))
            self._load_archive()

    def note(self, text: str, style: str = "$text-muted") -> None:
        self.query_one("#bench-note", Static).update(Content.styled(visible(text), style))

    # -- running ------------------------------------------------------------------------

    @on(Button.Pressed, "#bench-run")
    def run(self) -> None:
        """Start a benchmark with the form's values (a bad field is named, nothing runs)."""
        if self.running:
            return
        try:
            values = self.query_one(BenchForm).values()
        except BadArgument as exc:
            self.note(str(exc), "$text-error")
            return
        self._runner = self._run(self._config(values))

    def _config(self, values: FormValues) -> BenchConfig:
        from vllm_console.core.bench.sweep import BenchConfig

        t = self.target
        return BenchConfig(
            base_url=t.base_url, concurrency=values.levels, num_prompts=values.num_prompts,
            input_len=values.input_len, output_len=values.output_len, model=t.model,
            api_key=t.api_key, dataset=values.dataset, dataset_path=values.dataset_path,
            client=values.client, server_name=t.server_name, launch_argv=t.launch_argv,
            request_rate=values.request_rate, burstiness=values.burstiness,
        )  # fmt: skip

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.running  # otherwise escape goes on to the App (back to the models)
        return True

    @on(Button.Pressed, "#bench-cancel")
    def action_cancel(self) -> None:
        if self._runner is not None:
            self._runner.cancel()

    def _set_running(self, running: bool) -> None:
        self.query_one(BenchForm).set_enabled(not running)
        self.query_one("#bench-run", Button).disabled = running
        self.query_one("#bench-cancel", Button).disabled = not running
        self.query_one("#bench-export", Button).disabled = running or self.record is None
        self.query_one("#bench-head", Static).update(target_line(self.target, running))
        self.refresh_bindings()

    def _start(self, config: BenchConfig) -> None:
        self.record, self.findings, self.bars, self._bar = None, [], {}, None
        self.query_one("#bench-steps").remove_children()
        self.query_one(ResultsTable).reset()
        self.query_one("#bench-findings", Static).update("")
        self._show_run()
        levels = ",".join(map(str, config.concurrency))
        pace = describe_rate(config.request_rate, config.burstiness)
        self.note(
            f"Sweeping concurrency {levels}, {config.num_prompts} prompts each, arriving {pace}…"
        )
        self._set_running(True)

    @work(exclusive=True, group="bench-run", exit_on_error=False)
    async def _run(self, config: BenchConfig) -> None:
        from vllm_console.core.bench.sweep import Sweep
        from vllm_console.core.serve.install import find_vllm

        self._start(config)
        vllm = None
        if config.client != "console":
            vllm = await asyncio.to_thread(find_vllm, self.vllm_command)
        sweep = Sweep(config, vllm, self._on_event)
        try:
            record = await sweep.run()
        except asyncio.CancelledError:
            self._finish(sweep.record("cancelled"))
            raise
        except Exception:
            self._finish(sweep.record("failed"))
            raise
        self._finish(record)

    def _on_event(self, event: Event) -> None:
        """The sweep's events, as they happen (on the App's loop)."""
        from vllm_console.core.bench.sweep import Finding, StepDone, StepStarted

        if isinstance(event, Progress):
            if self._bar is not None:
                self._bar.progress = event  # drawn by the timer
        elif isinstance(event, StepStarted):
            self._bar = bar = StepBar(event.concurrency, event.total, event.source)
            self.bars[event.concurrency] = bar
            self.query_one("#bench-steps").mount(bar)
            self.query_one(ResultsTable).start_step(event.concurrency)
        elif isinstance(event, StepDone):
            if self._bar is not None:
                self._bar.finish(event.step)
            self.query_one(ResultsTable).finish_step(event.step)
        elif isinstance(event, Finding):
            self.findings.append(event.text)
            self._show_findings()

    def _redraw(self) -> None:
        bar = self._bar
        if bar is not None and bar.ended is None and bar.is_attached:
            bar.show()
            if bar.progress is not None:
                self.query_one(ResultsTable).progress(bar.progress)

    def _show_findings(self) -> None:
        lines = [Content.styled("• " + visible(f), "$text-warning") for f in self.findings]
        self.query_one("#bench-findings", Static).update(Content("\n").join(lines[-MAX_FINDINGS:]))

    def _finish(self, record: BenchRecord) -> None:
        from vllm_console.core.bench.archive import save

        kept: Path | None = None
        try:
            record = save(self.runs_dir, record)
            kept = self.runs_dir / record.id
        except OSError as exc:
            self.findings.append(f"cannot keep the result in {self.runs_dir}: {exc}")
            self._show_findings()
        self.record = record
        self._runner = None
        self._set_running(False)
        done = sum(s.completed for s in record.steps)
        where = f"; kept as {record.id}" if kept else ""
        self.note(f"{record.status}: {len(record.steps)} steps, {done} requests{where}")
        self._show_run()
        self._load_archive()
        self.post_message(self.Finished(record, kept))

    # -- the archive, export ---------------------------------------------------------------

    def _load_archive(self) -> None:
        """Offer the archive's runs of this model to the plots (once they are in)."""
        plots = self.plots
        if plots is None:  # not shown yet: the plots read the archive when they join
            return
        record = self.record
        model = record.model if record is not None else self.target.model
        self._read_archive(plots, model, record.id if record is not None else "")

    @work(thread=True, group="bench-archive", exclusive=True, exit_on_error=False)
    def _read_archive(self, plots: BenchPlots, model: str | None, skip: str) -> None:
        from vllm_console.core.bench.archive import all_benches

        benches = all_benches(self.runs_dir)
        self.app.call_from_thread(plots.offer, benches, model, skip)

    @on(Button.Pressed, "#bench-export")
    @on(Input.Submitted, "#bench-export-path")
    def export(self) -> None:
        raw = self.query_one("#bench-export-path", Input).value.strip()
        if self.record is None or not raw:
            self.note("Run a benchmark first, then give a file name", "$text-warning")
            return
        path = Path(raw).expanduser()
        self._export(self.record, path if path.is_absolute() else self.cwd / path)

    @work(thread=True, group="bench-export", exit_on_error=False)
    def _export(self, record: BenchRecord, path: Path) -> None:
        from vllm_console.core.bench.export import ExportError, export

        try:
            where, fmt = export(record, path)
        except ExportError as exc:
            self.app.call_from_thread(self.note, str(exc), "$text-error")
            return
        self.app.call_from_thread(self.note, f"Exported as {fmt} to {where}", "$text-success")
