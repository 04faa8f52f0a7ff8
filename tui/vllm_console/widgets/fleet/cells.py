"""The fleet table's rows as data, and the text of each cell (pure: no widgets, no I/O).

A `MemberRow` is what the table knows of one member: where it runs, its state (a local
member's `ServerState`; None for a remote one) and its last /metrics reading. `cells(row)`
turns it into one `Text` per column. Names, model ids and URLs come from users, files and
servers: they are shown with control characters made visible, never read as markup.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text

from vllm_console.core.endpoint.metrics import MetricsRates, MetricsSnapshot
from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.text import visible
from vllm_console.widgets.server.status import ServerState, clock, uptime

UNKNOWN = "—"
# What a glance needs first (a narrow side scrolls to the rest): state and load, then place.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "Name"),
    ("phase", "Phase"),
    ("health", "Health"),
    ("requests", "Run/wait"),
    ("kv", "KV"),
    ("gen", "Gen tok/s"),
    ("port", "Port"),
    ("gpus", "GPUs"),
    ("where", "Where"),
    ("model", "Model"),
)
WIDTHS = {"name": 14, "model": 32}  # columns capped (longer text ends in "…"); others fit
# The table's phase words are short; the pane's status line below says them in full.
SHORT = {
    Phase.LOADING_WEIGHTS: "loading",
    Phase.COMPILING: "compiling",
    Phase.ALLOCATING_KV: "KV cache",
    Phase.WARMING_UP: "warm-up",
    Phase.STARTING_SERVER: "API start",
}
PHASE_STYLE = {
    Phase.READY: "bold green",
    Phase.FAILED: "bold red",
    Phase.STOPPING: "yellow",
    Phase.STOPPED: "dim",
}


@dataclass(frozen=True)
class Reading:
    """A member's last /metrics poll; `rates` against the good one before (None: first)."""

    snapshot: MetricsSnapshot
    rates: MetricsRates | None = None

    @property
    def answered(self) -> bool:
        return not self.snapshot.empty


@dataclass(frozen=True)
class MemberRow:
    """One member as the table shows it."""

    name: str
    model: str = ""
    where: str = ""  # "pid 1234" for a local member, the URL of a remote one
    gpus: tuple[int, ...] | None = None
    port: int | None = None
    state: ServerState | None = None  # None: a remote member
    reading: Reading | None = None

    @property
    def polled(self) -> bool:
        """Whether its /metrics is read: a ready local member, or any remote one."""
        return self.state is None or self.state.phase is Phase.READY


def _number(value: float | None, fmt: str) -> str:
    return UNKNOWN if value is None else fmt.format(value)


def _capped(text: str, column: str, style: str = "") -> Text:
    """Outside text, made visible, cut to the column's width with an ellipsis."""
    text, width = visible(text), WIDTHS[column]
    return Text(text if len(text) <= width else text[: width - 1] + "…", style=style)


def phase_text(state: ServerState | None, now: float) -> Text:
    """'ready 12m' (up since ready), 'loading 0:40' (in that phase), 'failed'."""
    if state is None:
        return Text("remote", style="cyan")
    if state.phase is None:
        return Text(UNKNOWN)
    style = PHASE_STYLE.get(state.phase, "bold")
    word = SHORT.get(state.phase, str(state.phase))
    if state.phase is Phase.READY and state.ready_at is not None:
        return Text(f"{word} {uptime(now - state.ready_at)}", style=style)
    if state.running and state.phase_since is not None:
        return Text(f"{word} {clock(now - state.phase_since)}", style=style)
    return Text(word, style=style)


def health_text(row: MemberRow) -> Text:
    """Whether its /metrics answers: ok, no answer (a dead endpoint), or not asked yet."""
    if not row.polled:
        return Text(UNKNOWN, style="dim")
    if row.reading is None:
        return Text("…", style="dim")
    if row.reading.answered:
        return Text("ok", style="green")
    return Text("no answer", style="red")


def cells(row: MemberRow, now: float | None = None) -> dict[str, Text]:
    """The text of each column (keys of COLUMNS) for `row`."""
    now = time.monotonic() if now is None else now
    shown = row.reading if row.polled and row.reading and row.reading.answered else None
    snap = shown.snapshot if shown else None
    rates = shown.rates if shown else None
    running = snap.requests_running if snap else None
    waiting = snap.requests_waiting if snap else None
    kv = snap.kv_cache_usage if snap else None
    gen = rates.generation_tokens_per_s if rates else None
    requests = UNKNOWN if running is None else f"{running:.0f}/{_number(waiting, '{:.0f}')}"
    gpus = "inherited" if row.gpus is None else ",".join(map(str, row.gpus)) or UNKNOWN
    return {
        "name": _capped(row.name, "name", "bold"),
        "model": _capped(row.model, "model"),
        "where": Text(visible(row.where) or UNKNOWN),
        "gpus": Text(gpus),
        "port": Text(UNKNOWN if row.port is None else str(row.port)),
        "phase": phase_text(row.state, now),
        "requests": Text(requests),
        "kv": Text(_number(None if kv is None else 100 * kv, "{:.0f} %")),
        "gen": Text(_number(gen, "{:,.1f}")),
        "health": health_text(row),
    }
