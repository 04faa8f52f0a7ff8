"""One GPU's gauge block: memory bar, short history, temperature, power, our servers' shares
and processes.

A block is given plain data (`GpuSample`, its history ring, its `GpuShares` and which server
each PID of ours belongs to) by `GpuGauges` and renders it; it samples nothing itself. The
memory threshold is a class on the memory bar and its numbers (`-mem-ok`, `-mem-warn`,
`-mem-high`, `-mem-na`) and our processes carry `-ours`, so colours live in CSS only.

A tick must stay cheap with eight GPUs on screen (bench/bench_gpu_sampler.py): only what
changed is touched, a class changes on the small widget it colours (a class on the block would
restyle all of its children), and text is updated without a layout pass unless its width
changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Label, Static

from vllm_console.core.gpu.nvml import GiB, GpuProcess, GpuSample, HistoryPoint, gib_text
from vllm_console.core.gpu.owners import GpuShares
from vllm_console.core.text import visible
from vllm_console.widgets.gpu.shares import ShareLine, share_entries

W = TypeVar("W", bound=Widget)
WARN_AT = 0.70
HIGH_AT = 0.90
MAX_PROCESS_ROWS = 3
SPARK_CHARS = "▁▂▃▄▅▆▇█"
MEM_CLASSES = ("-mem-ok", "-mem-warn", "-mem-high", "-mem-na")


def memory_class(fraction: float | None) -> str:
    """The block's class for how full its memory is."""
    if fraction is None:
        return "-mem-na"
    if fraction < WARN_AT:
        return "-mem-ok"
    return "-mem-warn" if fraction < HIGH_AT else "-mem-high"


def spark(values: Sequence[float | None], high: float, width: int) -> str:
    """A text sparkline of the newest values, right-aligned, scaled to 0..`high`.

    Absolute scaling, unlike Textual's `Sparkline` (min..max of the data): a flat 70 GiB must
    not look like a sawtooth because it moves by a few MiB.
    """
    if width <= 0:
        return ""
    values = list(values)
    if len(values) > width:  # each cell the peak of its slice, the newest slice at the right
        step = len(values) / width
        slices = [values[int(i * step) : int((i + 1) * step)] for i in range(width)]
        values = [max((v for v in cell if v is not None), default=None) for cell in slices]
    cells = []
    for value in values:
        if value is None or high <= 0:
            cells.append(" ")
            continue
        level = int(max(0.0, min(1.0, value / high)) * len(SPARK_CHARS))
        cells.append(SPARK_CHARS[min(level, len(SPARK_CHARS) - 1)])
    return "".join(cells).rjust(width)


def memory_numbers(sample: GpuSample) -> str:
    """'16.0 / 80 GiB  20%' — used with a decimal, the total as the card is sold."""
    used = "N/A" if sample.memory_used is None else f"{sample.memory_used / GiB:.1f}"
    total = "N/A" if sample.memory_total is None else f"{sample.memory_total / GiB:.0f}"
    fraction = sample.memory_fraction
    percent = "N/A" if fraction is None else f"{fraction:.0%}"
    return f"{used} / {total} GiB {percent:>4}"


def block_title(sample: GpuSample) -> str:
    return visible(f"GPU {sample.index} · {sample.name or 'unknown device'}")


def block_subtitle(sample: GpuSample) -> str:
    """Temperature and power: '61°C · 312 / 700 W', N/A where the device does not say."""
    temp = "N/A °C" if sample.temperature_c is None else f"{sample.temperature_c}°C"
    return f"{temp} · {sample.power_text()}"


def process_order(procs: Sequence[GpuProcess], owners: Mapping[int, str]) -> list[GpuProcess]:
    """Ours first, then the biggest holders."""
    return sorted(procs, key=lambda p: (p.pid not in owners, -(p.used_memory or 0), p.pid))


class MemoryBar(Widget):
    """Used memory as a bar: our servers' shares first (highlighted), then the rest, then free.

    The used part takes the widget's colour (the block's threshold class sets it).
    """

    COMPONENT_CLASSES = {"memory-bar--ours", "memory-bar--free"}

    DEFAULT_CSS = Path(__file__).with_name("memory_bar.tcss").read_text(encoding="utf-8")

    def __init__(self, *, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self.total: int | None = None
        self.used: int | None = None
        self.ours: int | None = None

    def set_memory(self, total: int | None, used: int | None, ours: int | None) -> None:
        if (total, used, ours) != (self.total, self.used, self.ours):
            self.total, self.used, self.ours = total, used, ours
            self.refresh()

    def cells(self, width: int) -> tuple[int, int, int]:
        """How many cells are ours, others' and free."""
        if not self.total or self.used is None or width <= 0:
            return 0, 0, width
        used = min(width, round(width * min(1.0, self.used / self.total)))
        if self.used > 0:
            used = max(1, used)  # something is there: show it
        ours = 0
        if self.ours:
            ours = min(used, max(1, round(width * self.ours / self.total)))
        return ours, used - ours, width - used

    def render(self) -> RenderResult:
        ours, others, free = self.cells(self.size.width)
        bar = Text()
        bar.append("━" * ours, self.get_component_rich_style("memory-bar--ours"))
        bar.append("━" * others)
        bar.append("━" * free, self.get_component_rich_style("memory-bar--free"))
        return bar


class HistorySpark(Widget):
    """The last ~2 minutes of one quantity as a text sparkline, as wide as the widget."""

    DEFAULT_CSS = Path(__file__).with_name("history_spark.tcss").read_text(encoding="utf-8")

    def __init__(self, *, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self.values: tuple[float | None, ...] = ()
        self.high = 1.0

    def set_values(self, values: Sequence[float | None], high: float) -> None:
        values = tuple(values)
        if (values, high) != (self.values, self.high):
            self.values, self.high = values, high
            self.refresh()

    def render(self) -> RenderResult:
        return Text(spark(self.values, self.high, self.size.width))


class ProcessRow(Widget):
    """'● 1234 chat · VLLM::EngineCore … 14.0 GiB': PID, our server if it is one of ours, the
    process's name, and its memory right-aligned to the row's width."""

    DEFAULT_CSS = Path(__file__).with_name("process_row.tcss").read_text(encoding="utf-8")

    def __init__(self, *, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self.text = ""
        self.amount = ""

    def set_row(self, text: str, amount: str, *, ours: bool) -> None:
        self.set_class(ours, "-ours")
        if (text, amount) != (self.text, self.amount):
            self.text, self.amount = text, amount
            self.refresh()

    def render(self) -> RenderResult:
        width = self.size.width
        amount = f" {self.amount}" if self.amount else ""
        room = max(0, width - len(amount))
        text = self.text if len(self.text) <= room else self.text[: max(0, room - 1)] + "…"
        return Text(text.ljust(room) + amount)


class GpuBlock(Vertical):
    """The gauges of one GPU; `show()` gives it the newest data."""

    DEFAULT_CSS = Path(__file__).with_name("block.tcss").read_text(encoding="utf-8")

    def __init__(self, index: int, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="-no-server")
        self.index = index
        self.sample: GpuSample | None = None
        self.shares: GpuShares | None = None
        self._texts: dict[str, str] = {}  # what each Static shows, by selector
        self._found: dict[str, Widget] = {}
        self._rows: list[ProcessRow] = []

    def _text(self, selector: str, text: str, *, sized: bool = False) -> None:
        """Update a Static only if its text changed; lay out again only if its width did.

        `sized`: the Static's size is fixed by CSS, so its text never moves anything.
        """
        old = self._texts.get(selector)
        if old == text:
            return
        self._texts[selector] = text
        same = sized or (old is not None and len(old) == len(text))
        self._find(selector, Static).update(Content(text), layout=not same)

    def _find(self, selector: str, kind: type[W]) -> W:
        """query_one, remembered: a tick looks up the same dozen widgets every time."""
        found = self._found.get(selector)
        if found is None:
            found = self._found[selector] = self.query_one(selector, kind)
        assert isinstance(found, kind)
        return found

    def compose(self) -> ComposeResult:
        with Horizontal(classes="gpu-row -memory"):
            yield MemoryBar()
            yield Static("", classes="gpu-mem-text")
        with Horizontal(classes="gpu-row -history"):
            yield Label("mem", classes="gpu-label")
            yield HistorySpark(classes="gpu-spark -mem")
            yield Label("util", classes="gpu-label -second")
            yield HistorySpark(classes="gpu-spark -util")
            yield Static("", classes="gpu-util-text")
        yield ShareLine(classes="gpu-ours")
        with Vertical(classes="gpu-procs"):
            for _ in range(MAX_PROCESS_ROWS):
                yield ProcessRow()
        yield Static("", classes="gpu-error")

    def show(
        self,
        sample: GpuSample,
        history: Sequence[HistoryPoint],
        shares: GpuShares | None,
        owners: Mapping[int, str],
    ) -> None:
        """Render one sample; `shares` None means no server of ours to point out, `owners`
        names the server of each PID of ours."""
        self.sample, self.shares = sample, shares
        title, subtitle = block_title(sample), "" if sample.error else block_subtitle(sample)
        if self._texts.get("title") != title:
            self._texts["title"] = title
            self.border_title = Content(title)
        if self._texts.get("subtitle") != subtitle:
            self._texts["subtitle"] = subtitle
            self.border_subtitle = Content(subtitle)
        self.set_class(sample.error is not None, "-lost")
        self._text(".gpu-error", visible(sample.error or ""))
        self._show_memory(sample, shares)
        self._show_history(sample, history)
        self._show_shares(shares)
        self._show_processes(sample, owners)

    def _show_memory(self, sample: GpuSample, shares: GpuShares | None) -> None:
        wanted = memory_class(sample.memory_fraction)
        bar = self._find("MemoryBar", MemoryBar)
        for widget in (bar, self._find(".gpu-mem-text", Static)):
            widget.update_classes({name: name == wanted for name in MEM_CLASSES})
        ours = shares.ours if shares is not None else None
        bar.set_memory(sample.memory_total, sample.memory_used, ours)
        self._text(".gpu-mem-text", memory_numbers(sample))

    def _show_history(self, sample: GpuSample, history: Sequence[HistoryPoint]) -> None:
        memory = [None if p.memory_used is None else float(p.memory_used) for p in history]
        util = [None if p.util_gpu is None else float(p.util_gpu) for p in history]
        self._find(".gpu-spark.-mem", HistorySpark).set_values(
            memory, float(sample.memory_total or 0)
        )
        self._find(".gpu-spark.-util", HistorySpark).set_values(util, 100.0)
        util_text = "N/A" if sample.util_gpu is None else f"{sample.util_gpu}%"
        self._text(".gpu-util-text", util_text, sized=True)

    def _show_shares(self, shares: GpuShares | None) -> None:
        line = self._find(".gpu-ours", ShareLine)
        entries = share_entries(shares)
        self.set_class(shares is None, "-no-server")
        line.set_class(not entries, "-none")
        line.set_entries(entries)
        self.set_class(bool(shares and shares.ours), "-serving")

    def _show_processes(self, sample: GpuSample, owners: Mapping[int, str]) -> None:
        rows = self._rows or list(self.query(ProcessRow))
        self._rows = rows
        lines = process_lines(sample, owners, len(rows))
        for row, line in zip(rows, lines, strict=False):
            row.set_row(*line[:2], ours=line[2])
        for i, row in enumerate(rows):
            row.set_class(i >= len(lines), "-unused")


def process_text(proc: GpuProcess, owner: str | None) -> str:
    """'● 4242 chat · VLLM::EngineCore' for one of ours, '  977 python3' for another's.

    A process names itself (anyone's program can) and a server's name is the user's: both
    are shown, never obeyed.
    """
    name = visible(proc.name or "?")
    if owner is None:
        return f"  {proc.pid} {name}"
    return f"● {proc.pid} {visible(owner)} · {name}"


def process_lines(
    sample: GpuSample, owners: Mapping[int, str], rows: int = MAX_PROCESS_ROWS
) -> list[tuple[str, str, bool]]:
    """(text, memory, ours) for each row shown; the last row sums those that do not fit."""
    if not sample.processes_known:
        return [("processes: N/A (not reported)", "", False)]
    procs = process_order(sample.processes, owners)
    if not procs:
        return [("no processes", "", False)]
    shown = procs if len(procs) <= rows else procs[: rows - 1]
    lines = [
        (process_text(p, owners.get(p.pid)), gib_text(p.used_memory), p.pid in owners)
        for p in shown
    ]
    rest = procs[len(shown) :]
    if rest:
        total = sum(p.used_memory or 0 for p in rest)
        lines.append((f"  + {len(rest)} more", gib_text(total), False))
    return lines
