"""The Bench tab's plots: output tokens/s and TTFT p99 against concurrency, this run beside an
earlier run of the same model, chosen from the run archive.

Drawn with plotext (`textual_plotext.PlotextPlot`), which renders through ANSI: every label
that comes from the archive or the server (a model name, a run id) goes through
`core.text.visible` first, so it cannot carry an escape sequence in.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Select
from textual_plotext import PlotextPlot

from vllm_console.core.bench.archive import SavedBench
from vllm_console.core.bench.stats import StepResult
from vllm_console.core.text import visible

PLOTS = (
    ("plot-throughput", "Output tokens/s", "output_throughput"),
    ("plot-ttft", "TTFT p99 (ms)", "ttft_p99_ms"),
)
MAX_CHOICES = 50


def when(saved: SavedBench) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(saved.started))


def choice_label(saved: SavedBench) -> str:
    levels = ",".join(str(s.concurrency) for s in saved.steps) or "-"
    paced = saved.pacing()
    return visible(f"{when(saved)} {saved.model or '?'} c={levels}{paced} ({saved.source or '-'})")


class BenchPlots(Vertical):
    """Two plots and the choice of the run to compare with."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.steps: tuple[StepResult, ...] = ()
        self.model: str | None = None
        self.earlier: dict[str, SavedBench] = {}

    def compose(self) -> ComposeResult:
        with Horizontal(classes="bench-row"):
            yield Label("Compare with", classes="bench-label")
            yield Select[str]([], prompt="no earlier run", id="bench-compare", compact=True)
        with Horizontal(id="bench-plots"):
            for plot_id, _, _ in PLOTS:
                yield PlotextPlot(id=plot_id)

    def on_mount(self) -> None:
        self.redraw()

    def show_run(self, steps: Sequence[StepResult], model: str | None) -> None:
        self.steps, self.model = tuple(steps), model
        self.redraw()

    def offer(self, benches: Sequence[SavedBench], model: str | None, skip: str = "") -> None:
        """The archive's runs of `model` to compare with (newest first, `skip` left out); the
        newest is chosen unless the person chose another that is still there."""
        same = [
            b for b in benches if b.id != skip and b.steps and (model is None or b.model == model)
        ]
        self.earlier = {b.id: b for b in same[:MAX_CHOICES]}
        select = self.query_one("#bench-compare", Select)
        kept = select.value if select.value in self.earlier else None
        select.set_options([(choice_label(b), b.id) for b in self.earlier.values()])
        chosen = kept or next(iter(self.earlier), None)
        if chosen is not None:
            select.value = chosen
        self.redraw()

    @on(Select.Changed, "#bench-compare")
    def _compare_changed(self) -> None:
        self.redraw()

    def compared(self) -> SavedBench | None:
        value = self.query_one("#bench-compare", Select).value
        return self.earlier.get(value) if isinstance(value, str) else None

    def redraw(self) -> None:
        earlier = self.compared()
        for plot_id, title, figure in PLOTS:
            widget = self.query_one(f"#{plot_id}", PlotextPlot)
            plt = widget.plt
            plt.clear_data()
            plt.title(title)
            plt.xlabel("concurrency")
            series = [("this run", self.steps)]
            if earlier is not None:
                series.append((f"earlier, {when(earlier)}", earlier.steps))
            for label, steps in series:
                if steps:
                    xs = [s.concurrency for s in steps]
                    plt.plot(xs, [getattr(s, figure) for s in steps], label=label, marker="braille")
            levels = sorted({float(s.concurrency) for _, steps in series for s in steps})
            if levels:
                plt.xticks(levels)
            widget.refresh()
