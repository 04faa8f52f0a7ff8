"""The header's line after the title: the catalog, the fleet and the GPUs at a glance.

'vLLM console │ 12 models · 3 with problems · servers: 2 ready, 1 starting · GPU 20.1/80 GiB'.
Each part comes from a different message (the browser's catalog, the server panes' states,
the GPU strip's snapshot); the App keeps one `HeaderLine`, sets the part a message changes,
and shows `text(...)` as its sub-title, once a second too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from textual.content import Content

from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.core.serve.diagnose import BOOTING, Phase
from vllm_console.core.text import visible
from vllm_console.widgets.server.status import ServerState

# How each phase is counted in the sum, in the order the sum names them.
SUMMED = {
    Phase.READY: "ready",
    **dict.fromkeys(BOOTING, "starting"),
    Phase.STOPPING: "stopping",
    Phase.FAILED: "failed",
    Phase.STOPPED: "stopped",
}


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


def fleet_summary(states: Iterable[ServerState]) -> str:
    """The header's fleet part: 'servers: 2 ready, 1 starting, 1 failed'; '' with none."""
    counts = Counter(SUMMED[s.phase] for s in states if s.phase is not None)
    order = dict.fromkeys(SUMMED.values())
    parts = [f"{counts[word]} {word}" for word in order if counts[word]]
    return f"servers: {', '.join(parts)}" if parts else ""


def title_content(title: str, sub_title: str) -> Content:
    """The header's text; one separator, owned by the title: no styled run starts with a
    space."""
    # The title names the endpoint, which settings (or a server) gave: shown, never obeyed.
    title, sub_title = visible(title), visible(sub_title)
    if not sub_title:
        return Content(title)
    return Content.assemble(f"{title} ", (f"│ {sub_title}", "dim"))


class HeaderLine:
    """The catalog and GPU parts as their last messages said; the fleet's is read live."""

    def __init__(self) -> None:
        self.catalog = catalog_summary((), scanning=True)  # the first frame: still looking
        self.gpus = ""

    def text(self, servers: Iterable[ServerState]) -> str:
        parts = (self.catalog, fleet_summary(servers), self.gpus)
        return " · ".join(part for part in parts if part)
