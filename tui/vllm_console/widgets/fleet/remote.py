"""A remote member's pane: its URL, whether it answers and since when, what it serves, its load.

An async worker holds one HTTP client and, every few seconds, probes the member
(`core.fleet.probe`: `/health`, `/version`, `/v1/models`) and reads its `/metrics` at once,
each bounded by the probe's timeout, so a dead or hostile server costs one timeout per round
and never more. A member that stops answering is marked down ("down since 14:02:11, last
answer 40 s ago") and polled on: the pane never removes itself, and the member comes back up
by itself. There is no stop: something else runs a remote server. Everything a server sent
(version, model ids, errors quoting it) is shown with control characters made visible.

Use: `RemotePane(member)` for a member with a `url`. After each round it posts
`RemotePane.StateChanged(name, state)` (a frozen `RemoteState`), for the fleet table's row.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Static

from vllm_console.core.endpoint.client import make_client
from vllm_console.core.endpoint.metrics import MetricsSnapshot
from vllm_console.core.fleet.model import Member
from vllm_console.core.fleet.probe import (
    PROBE_TIMEOUT_S,
    MemberStats,
    RemoteState,
    fetch_metrics,
    probe,
)
from vllm_console.core.text import visible
from vllm_console.widgets.worker_errors import ReportsWorkerErrors

__all__ = ["POLL_INTERVAL_S", "RemotePane", "RemoteState"]

POLL_INTERVAL_S = 3.0
MODELS_SHOWN = 8
LABEL = "{:<10}"
UNKNOWN = "\N{EN DASH}"


def health_line(state: RemoteState | None, now: float) -> Content:
    if state is None:
        return Content("◌ asking…")
    mark = "●" if state.healthy else "○"
    return Content(f"{mark} {state.describe(now)}")


def models_text(models: tuple[str, ...]) -> str:
    shown = ", ".join(visible(name) for name in models[:MODELS_SHOWN])
    more = len(models) - MODELS_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown or UNKNOWN


def version_text(state: RemoteState) -> str:
    if state.version is not None:
        return f"vLLM {visible(state.version)}"
    return "not vLLM (no /version)" if state.last_answer is not None else UNKNOWN


class RemotePane(ReportsWorkerErrors, Vertical):
    """One remote member, probed while mounted."""

    DEFAULT_CSS = Path(__file__).with_name("remote.tcss").read_text(encoding="utf-8")

    class StateChanged(Message):
        """A round of probing ended; `state` is what it found (posted every round)."""

        def __init__(self, name: str, state: RemoteState) -> None:
            super().__init__()
            self.name = name
            self.state = state

    def __init__(
        self,
        member: Member,
        *,
        interval: float = POLL_INTERVAL_S,
        timeout: float = PROBE_TIMEOUT_S,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        if member.url is None:
            raise ValueError(f"{member.name} is a local member: it has no URL to probe")
        super().__init__(id=id, classes=classes)
        self.member = member
        self.url: str = member.url
        self.interval = interval
        self.timeout = timeout
        self.state: RemoteState | None = None
        self.rounds = 0
        self.last_error: tuple[float, str] | None = None  # when, and what, it last went wrong

    def compose(self) -> ComposeResult:
        key = "  · API key set" if self.member.api_key else ""
        yield Static(
            Content.assemble(
                (visible(self.member.name), "bold"),
                (f"  {visible(self.url)}{key}", "$text-muted"),
            ),
            id="remote-title",
        )
        yield Static(health_line(None, time.time()), id="remote-health")
        for name in ("version", "models", "stats"):
            yield Static("", id=f"remote-{name}", classes="remote-row")
        yield Static("", id="remote-error")

    def on_mount(self) -> None:
        self._show()
        self._poll()

    @work(exclusive=True, group="remote-poll", exit_on_error=False)
    async def _poll(self) -> None:
        url, key = self.url, self.member.api_key
        earlier: MetricsSnapshot | None = None
        async with make_client(url) as client:
            while True:
                seen, snapshot = await asyncio.gather(
                    probe(client, url, key, timeout=self.timeout),
                    fetch_metrics(client, url, key, timeout=self.timeout),
                )
                stats = MemberStats.between(earlier, snapshot) if snapshot else None
                earlier = snapshot
                previous = self.state
                state = (
                    RemoteState.first(seen, stats)
                    if previous is None
                    else previous.after(seen, stats)
                )
                self._record(state)
                self.post_message(self.StateChanged(self.member.name, state))
                await asyncio.sleep(self.interval)

    def _record(self, state: RemoteState) -> None:
        self.state = state
        self.rounds += 1
        if state.error is not None:
            self.last_error = (state.checked_at, state.error)
        self._show()

    def _show(self) -> None:
        state = self.state
        now = time.time()
        health = self.query_one("#remote-health", Static)
        health.update(health_line(state, now))
        health.set_class(state is not None and state.healthy, "-up")
        health.set_class(state is not None and not state.healthy, "-down")
        rows = {
            "version": version_text(state) if state else UNKNOWN,
            "models": models_text(state.models) if state else UNKNOWN,
            "stats": state.stats.summary() if state and state.stats else UNKNOWN,
        }
        labels = {"version": "Version", "models": "Serves", "stats": "Load"}
        for name, text in rows.items():
            row = Content.assemble((LABEL.format(labels[name]), "$text-muted"), text)
            self.query_one(f"#remote-{name}", Static).update(row)
        error = self.query_one("#remote-error", Static)
        error.display = self.last_error is not None
        if self.last_error is not None:
            at, what = self.last_error
            when = time.strftime("%H:%M:%S", time.localtime(at))
            error.update(Content(f"Last error ({when}): {visible(what)}"))
