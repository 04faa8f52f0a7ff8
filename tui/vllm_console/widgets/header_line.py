"""The header's line after the title: the catalog, the server and the GPUs at a glance.

'vLLM console │ 12 models · 3 with problems · server ready · up 3:12 · 20.1/80.0 GiB'. Each
part comes from a different message (the browser's catalog, the server pane's state, the GPU
strip's snapshot); the App keeps one `HeaderLine`, sets the part a message changes, and
shows `text(...)` as its sub-title, once a second too for the server's clock.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.content import Content

from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.core.text import visible
from vllm_console.widgets.server.status import ServerState, header_text


def catalog_summary(entries: Iterable[ModelEntry], scanning: bool) -> str:
    """The header's catalog part, e.g. '12 models · 3 with problems · scanning…'."""
    entries = tuple(entries)
    parts = [f"{len(entries)} model{'' if len(entries) == 1 else 's'}"]
    problems = sum(1 for entry in entries if entry.problems)
    if problems:
        parts.append(f"{problems} with problems")
    if scanning:
        parts.append("scanning…")
    return " · ".join(parts)


def title_content(title: str, sub_title: str) -> Content:
    """The header's text; one separator, owned by the title: no styled run starts with a
    space."""
    # The title names the endpoint, which settings (or a server) gave: shown, never obeyed.
    title, sub_title = visible(title), visible(sub_title)
    if not sub_title:
        return Content(title)
    return Content.assemble(f"{title} ", (f"│ {sub_title}", "dim"))


class HeaderLine:
    """The catalog and GPU parts as their last messages said; the server's is read live."""

    def __init__(self) -> None:
        self.catalog = catalog_summary((), scanning=True)  # the first frame: still looking
        self.gpus = ""

    def text(self, server: ServerState) -> str:
        parts = (self.catalog, header_text(server), self.gpus)
        return " · ".join(part for part in parts if part)
