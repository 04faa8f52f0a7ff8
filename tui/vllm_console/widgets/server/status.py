"""The server pane's state as data, and the text made from it (status line, findings).

Pure: no widgets, no I/O, so the wording can be tested on its own and the header and the
pane say the same thing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from textual.content import Content

from vllm_console.core.serve.diagnose import BOOTING, Finding, Phase
from vllm_console.core.serve.spec import LaunchRequest
from vllm_console.core.text import visible

ACTIVE = BOOTING | {Phase.READY, Phase.STOPPING}
PHASE_STYLE = {
    Phase.READY: "bold $text-success",
    Phase.FAILED: "bold $text-error",
    Phase.STOPPING: "bold $text-warning",
    Phase.STOPPED: "bold $text-muted",
}


@dataclass(frozen=True)
class ServerState:
    """What the pane knows about its server; `None` fields are unknown or not yet."""

    phase: Phase | None = None  # None: nothing launched yet
    label: str = ""
    url: str | None = None
    started: float | None = None  # time.monotonic() at launch
    phase_since: float | None = None
    ready_at: float | None = None
    phase_times: tuple[tuple[str, float], ...] = ()
    findings: tuple[Finding, ...] = ()
    note: str = ""  # "stopped in 0.4 s", "exit code 1", ...
    attached_run: str | None = None  # the run id of a server we attached to
    request: LaunchRequest | None = field(default=None, compare=False)

    @property
    def running(self) -> bool:
        """A process of ours may be alive: stop applies."""
        return self.phase in ACTIVE

    @property
    def fix(self) -> Finding | None:
        """The first finding that comes with a relaunch fix, when one applies."""
        if self.running or self.request is None:
            return None
        return next((f for f in self.findings if f.fix is not None), None)


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def uptime(seconds: float) -> str:
    """'<1m', '12m', '3h05m': a ready server's clock changes what is drawn once a minute
    (a clock ticking every second for each of a fleet's servers costs a quiet console more
    than everything else it does)."""
    minutes = max(0, int(seconds)) // 60
    if not minutes:
        return "<1m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def status_line(state: ServerState, now: float | None = None) -> Content:
    """Phase, the time spent in it, and what the server is: the pane's first line."""
    if state.phase is None:
        return Content("No server launched. Select a model and press enter to launch it.")
    now = time.monotonic() if now is None else now
    style = PHASE_STYLE.get(state.phase, "bold $text-primary")
    # Each run ends with its separator: a run starting with spaces renders badly in SVGs.
    plain = []
    if state.phase is Phase.READY and state.ready_at is not None:
        plain.append("up " + uptime(now - state.ready_at))
    elif state.running and state.phase_since is not None:
        plain.append(clock(now - state.phase_since))
    # The label names a model (a folder's name) and the note may quote the server: shown as
    # they are, control characters made visible.
    if state.label:
        plain.append(visible(state.label))
    if state.url and state.phase is Phase.READY:
        plain.append(visible(state.url))
    gap = "  " if plain and state.note else ""
    parts: list[str | tuple[str, str]] = [(f"● {state.phase}  ", style), "  ".join(plain) + gap]
    if state.note:
        parts.append((visible(f"({state.note})"), "$text-muted"))
    return Content.assemble(*parts)


def phases_line(state: ServerState) -> Content:
    """Time spent in each phase so far: 'starting 0.4s → loading weights 12.1s → …'."""
    steps = [f"{name} {seconds:.1f}s" for name, seconds in state.phase_times]
    return Content(" → ".join(steps)) if steps else Content("")


def findings_text(state: ServerState) -> Content:
    """Each finding's cause and fix; the one with a relaunch fix names its key."""
    parts: list[str | tuple[str, str]] = []
    fix = state.fix
    for finding in state.findings:
        if parts:
            parts.append("\n")
        cause, hint = visible(finding.cause), visible(finding.hint)  # they may quote the log
        parts += [("✖ ", "$text-error"), (cause, "bold"), "\n  fix: ", hint]
        if finding is fix and finding.fix is not None:
            parts += ["\n  ", ("f ", "bold $text-accent"), f"relaunch with {finding.fix.label}"]
    return Content.assemble(*parts)
