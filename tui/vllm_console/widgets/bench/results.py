"""The Bench tab's live parts: one progress bar per step and the results table.

`StepBar` is a step's bar: requests done of total and the time since it started (from the
load's `Progress`; `vllm bench serve` reports none while it runs, so its bar only pulses and
its clock runs). `ResultsTable` gets a row when a step starts, whose done and failed counts
follow the progress and whose figures fill in when it ends. Errors and mismatches quoted from
the server are shown as text, never markup.
"""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import DataTable, Label, ProgressBar, Static

from vllm_console.core.bench.export import COLUMNS, figures
from vllm_console.core.bench.load import Progress
from vllm_console.core.bench.stats import CONSOLE, StepResult
from vllm_console.core.text import visible

PENDING = "\N{HORIZONTAL ELLIPSIS}"


class StepBar(Horizontal):
    """Concurrency N: [bar] done/total, failed, elapsed."""

    def __init__(self, concurrency: int, total: int, source: str) -> None:
        super().__init__(classes="bench-step")
        self.concurrency = concurrency
        self.total = total
        self.live = source == CONSOLE  # the console's client reports each request
        self.started = time.monotonic()
        self.ended: float | None = None
        self.progress: Progress | None = None
        # Held, not queried: a step can end (and be drawn) before its children are mounted.
        self._bar = ProgressBar(total=self.total if self.live else None, show_eta=False)
        self._count = Static("", classes="bench-step-count")

    def compose(self) -> ComposeResult:
        yield Label(f"c={self.concurrency}", classes="bench-step-label")
        yield self._bar
        yield self._count

    def on_mount(self) -> None:
        self.show()

    def show(self) -> None:
        """Redraw from the latest progress (called on a timer: progress comes per request)."""
        if not self._bar.is_mounted:  # drawn again by on_mount
            return
        now = self.ended if self.ended is not None else time.monotonic()
        seen = self.progress
        done = seen.done if seen else 0
        failed = seen.failed if seen else 0
        if seen is not None:
            self._bar.update(total=seen.total, progress=done)
        text = f"{done}/{self.total} done" if self.live or self.ended else "running"
        text += f", {failed} failed" if failed else ""
        self._count.update(f"{text} · {now - self.started:.1f} s")

    def finish(self, step: StepResult) -> None:
        self.ended = time.monotonic()
        total = step.completed + step.failed
        self.progress = Progress(step.concurrency, total, step.failed, total, 0.0)
        self.show()


class ResultsTable(DataTable[str | Content]):
    """One row per step, live."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._current: str | None = None

    def on_mount(self) -> None:
        for heading, name, _ in COLUMNS:
            self.add_column(heading, key=name)
        self.add_column("server check", key="check")

    def start_step(self, concurrency: int) -> str:
        key = str(concurrency)
        if key in self.rows:  # the same level twice in one list: a row each
            key = f"{concurrency}-{len(self.rows)}"
        cells = [str(concurrency)] + [PENDING] * len(COLUMNS)
        self.add_row(*cells, key=key)
        self._current = key
        return key

    def progress(self, seen: Progress) -> None:
        key = self._current
        if key is None or key not in self.rows:
            return
        self.update_cell(key, "completed", str(seen.done - seen.failed))
        self.update_cell(key, "failed", str(seen.failed))

    def finish_step(self, step: StepResult) -> None:
        key = self._current
        if key is None or key not in self.rows:
            key = self.start_step(step.concurrency)
        for (_, name, _), text in zip(COLUMNS, figures(step), strict=True):
            self.update_cell(key, name, text)
        check: str | Content = "ok" if step.server else "-"
        if step.mismatch:
            check = Content.styled(visible(step.mismatch), "$text-warning")
        self.update_cell(key, "check", check)

    def reset(self) -> None:
        self.clear()
        self._current = None
