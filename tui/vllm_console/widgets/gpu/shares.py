"""One GPU's memory by server: 'chat 14.2 GiB · embed 3.1 GiB · not ours 2.0 GiB'.

`GpuBlock` gives `ShareLine` the GPU's `GpuShares` (from `core.gpu.owners.attribute`); the
line shows each of our servers' share by name and then the memory no server of ours holds
(or, where NVML names none of our PIDs and several servers run, the memory that cannot be
told apart). Entries wrap between each other, never inside one, so a block as narrow as the
strip allows still shows every name; where a line breaks depends on the names, not on the
figures, so a block does not change height (and the strip its layout) when a figure gains a
digit. Server names are the user's words: they go out as plain `Text`, never as markup.
"""

from __future__ import annotations

import re
from pathlib import Path

from rich.text import Text
from textual.app import RenderResult
from textual.geometry import Size
from textual.widget import Widget

from vllm_console.core.gpu.nvml import gib_text
from vllm_console.core.gpu.owners import GpuShares
from vllm_console.core.text import visible

SEPARATOR = " · "
FIGURE = re.compile(r"\d+(?:\.\d+)?")
WIDEST_FIGURE = "999.9"  # GiB on one GPU
Entry = tuple[str, str, bool]  # who, how much, and whether it is one of our servers' share


def share_entries(gpu: GpuShares | None) -> list[Entry]:
    """Each share by name, then the rest unless there is none; nothing without servers."""
    if gpu is None:
        return []
    entries = [(visible(s.owner), s.amount(), True) for s in gpu.shares]
    if gpu.rest != 0:
        entries.append((str(gpu.rest_kind), gib_text(gpu.rest), False))
    return entries


def entry_text(entry: Entry) -> str:
    return f"{entry[0]} {entry[1]}"


def cells(entry: Entry) -> int:
    """The cells an entry may take: its figures counted at their widest."""
    return len(entry[0]) + 1 + len(FIGURE.sub(WIDEST_FIGURE, entry[1]))


def wrap(entries: list[Entry], width: int) -> list[list[Entry]]:
    """Entries in lines of at most `width` cells, breaking only between entries."""
    lines: list[list[Entry]] = []
    used = 0
    for entry in entries:
        size = cells(entry)
        if lines and width > 0 and used + len(SEPARATOR) + size <= width:
            lines[-1].append(entry)
            used += len(SEPARATOR) + size
        elif lines and width <= 0:
            lines[-1].append(entry)
        else:
            lines.append([entry])
            used = size
    return lines


class ShareLine(Widget):
    """Our servers' shares of one GPU and the rest, as tall as its entries wrap to."""

    COMPONENT_CLASSES = {"share-line--ours", "share-line--rest"}

    DEFAULT_CSS = Path(__file__).with_name("share_line.tcss").read_text(encoding="utf-8")

    def __init__(self, *, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self.entries: list[Entry] = []

    def set_entries(self, entries: list[Entry]) -> None:
        """Repaint if they changed; lay out again only if they now take more or fewer lines."""
        if entries == self.entries:
            return
        width = self.size.width
        relayout = len(wrap(entries, width)) != len(wrap(self.entries, width))
        self.entries = entries
        self.refresh(layout=relayout)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(1, len(wrap(self.entries, width)))

    def render(self) -> RenderResult:
        width = self.size.width
        ours = self.get_component_rich_style("share-line--ours")
        rest = self.get_component_rich_style("share-line--rest")
        text = Text(no_wrap=True, overflow="ellipsis")
        for n, line in enumerate(wrap(self.entries, width)):
            if n:
                text.append("\n")
            for k, entry in enumerate(line):
                if k:
                    text.append(SEPARATOR)
                words = entry_text(entry)
                if width > 0 and len(words) > width:  # a name longer than the block is wide
                    words = words[: max(0, width - 1)] + "…"
                text.append(words, ours if entry[2] else rest)
        return text
