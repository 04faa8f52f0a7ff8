"""The server pane: one vLLM server's status line, diagnosis and live log.

A fleet has one pane per local member (`widgets.fleet` holds them); each is named after its
member (`server_name`), runs its own session and says which member it is in its messages.

The server is a `ServerSession` read inside an async worker (started from the event-loop
thread, so the child is forked there): cancelling the worker closes the session, which stops
the server. The session spawns, records and judges the run exactly as for the headless
`serve`; the pane shows its events and reports its state upwards as `ServerPane.StateChanged`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, Static
from textual.worker import Worker, WorkerState

from vllm_console.config import Settings
from vllm_console.core.files import private_dir, write_private
from vllm_console.core.serve import attach as attached
from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.serve.process import health_url
from vllm_console.core.serve.runs import LEFT_RUNNING, RunInfo
from vllm_console.core.serve.session import ServerSession, SessionEnded, SessionEvent
from vllm_console.core.serve.spec import LaunchRequest
from vllm_console.core.serve.supervisor import LogLine, PhaseChanged, Ready, Stalled
from vllm_console.core.text import visible
from vllm_console.widgets.server.log_view import BufferedLog, is_poll
from vllm_console.widgets.server.status import (
    ServerState,
    findings_text,
    phases_line,
    status_line,
)
from vllm_console.widgets.shown import is_shown
from vllm_console.widgets.worker_errors import ReportsWorkerErrors


class WithoutPolls:
    """The log view, without the lines in which the server says it answered a poll: the
    console reads each ready server's /metrics every few seconds, and a line each time would
    bury the log (and redraw it). The run's log file keeps them."""

    def __init__(self, log: BufferedLog) -> None:
        self._log = log

    def reset(self, lines: Iterable[str] = ()) -> None:
        self._log.reset(line for line in lines if not is_poll(line))

    def feed(self, lines: Iterable[str]) -> None:
        self._log.feed([line for line in lines if not is_poll(line)])


class ServerPane(ReportsWorkerErrors, Vertical):
    """Status line, phase times, findings, a search field and the log of the server."""

    DEFAULT_CSS = Path(__file__).with_name("pane.tcss").read_text(encoding="utf-8")

    BINDINGS = [
        Binding(
            "p",
            "toggle_follow",
            "Pause",
            id="server.follow",
            tooltip="Pause the log where it is, or follow new lines again",
        ),
        Binding(
            "w",
            "toggle_problems",
            "Warnings",
            id="server.problems",
            tooltip="Show warnings and errors only, or all lines",
        ),
        Binding(
            "slash",
            "search",
            "Search log",
            id="server.search",
            tooltip="Show only the lines that contain a text; escape clears it",
        ),
        Binding(
            "ctrl+s",
            "save_log",
            "Save log",
            id="server.save",
            tooltip="Save the whole log to a file (in the saved-logs folder beside the runs)",
        ),
    ]

    class StateChanged(Message):
        """The server's phase, findings or note changed; `name` is the member's."""

        def __init__(self, state: ServerState, name: str) -> None:
            super().__init__()
            self.state = state
            self.name = name

    def __init__(
        self, settings: Settings, *, server_name: str = "server", id: str | None = None
    ) -> None:
        """`server_name`: the member's name in the fleet, recorded with each run."""
        super().__init__(id=id)
        self._settings = settings
        self.server_name = server_name
        self.state = ServerState()
        self._session: ServerSession | None = None
        self._log: BufferedLog | None = None
        self._attached: RunInfo | None = None
        self._status_length = -1  # of the status line as last laid out
        self._status: Content | None = None  # as last drawn
        self._worker: Worker[None] | None = None

    def compose(self) -> ComposeResult:
        yield Static(status_line(self.state), id="server-status")
        yield Static("", id="server-phases")
        yield Static("", id="server-findings")
        yield Input(placeholder="Search the log (escape clears)", id="log-search")
        yield BufferedLog(id="server-log")

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick, name="server-clock")

    @property
    def log_view(self) -> BufferedLog:
        if self._log is None:  # asked for with every batch of lines: found once
            self._log = self.query_one("#server-log", BufferedLog)
        return self._log

    # -- state ----------------------------------------------------------------------------

    def _set_state(self, **changes: object) -> None:
        self.state = replace(self.state, **changes)  # type: ignore[arg-type]
        self._show_status()
        self.query_one("#server-phases", Static).update(phases_line(self.state))
        findings = self.query_one("#server-findings", Static)
        findings.update(findings_text(self.state))
        findings.display = bool(self.state.findings)
        self.post_message(self.StateChanged(self.state, self.server_name))

    def _tick(self) -> None:
        # A fleet has a pane per server, one shown: the others' clocks wait until they are.
        if self.state.running and is_shown(self):
            self._show_status()

    def _show_status(self) -> None:
        """The status line; laid out again (the screen's costliest step, once a second for a
        ticking clock) only when its length changed, as it may then wrap differently."""
        line = status_line(self.state)
        if line == self._status:
            return
        self._status = line
        same = line.cell_length == self._status_length
        self._status_length = line.cell_length
        self.query_one("#server-status", Static).update(line, layout=not same)

    # -- public, called by the App --------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The launched server's PID (its session id too); None when none of ours runs."""
        session = self._session
        return session.pid if session is not None else None

    @property
    def attached(self) -> RunInfo | None:
        """The earlier run this pane follows, when it was attached rather than launched."""
        return self._attached

    @property
    def process_group(self) -> int | None:
        """The server's session id while it may run, launched here or attached to: the root
        of the process tree the GPU strip counts as this member's."""
        if not self.state.running:
            return None
        run = self._attached
        return run.pid if run is not None else self.pid

    def launch(self, request: LaunchRequest) -> None:
        now = time.monotonic()
        url = health_url(request.spec.host, request.spec.port).removesuffix("/health") + "/v1"
        self.log_view.reset()
        self._attached = None
        self._set_state(
            phase=Phase.STARTING,
            label=request.spec.served_model_name or request.model_id,
            url=url,
            started=now,
            phase_since=now,
            ready_at=None,
            phase_times=(),
            findings=(),
            note="",
            attached_run=None,
            request=request,
        )
        self._worker = self._serve(request)

    def stop(self) -> None:
        """Stop the server (SIGTERM, grace, SIGKILL of the group); no-op if none runs."""
        if not self.state.running:
            return
        if self.state.attached_run is not None:
            self._stop_attached(self.state.attached_run)
        elif self._session is not None:
            self._session.stop()

    async def wait_idle(self) -> None:
        """Until the server worker has finished (after `stop`, say)."""
        worker = self._worker
        if worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING):
            with contextlib.suppress(Exception):
                await worker.wait()

    def detach(self) -> bool:
        """Leave our server running past our exit; recorded as "left running"."""
        session = self._session
        if session is None or not session.detach():
            return False
        self._set_state(note="left running")
        return True

    def attach(self, run: RunInfo) -> None:
        """Watch a server left by an earlier console: its recorded log and its /health."""
        now = time.monotonic()
        self._attached = run
        self._set_state(
            phase=Phase.STARTING,
            label=run.model,
            url=f"http://127.0.0.1:{run.port}/v1" if run.port else None,
            started=now,
            phase_since=now,
            ready_at=None,
            phase_times=(),
            findings=(),
            note=f"attached to run {run.id}",
            attached_run=run.id,
            request=None,
        )
        self._worker = self._follow_run(run)

    # -- workers --------------------------------------------------------------------------

    @work(exclusive=True, group="server", exit_on_error=False)
    async def _serve(self, request: LaunchRequest) -> None:
        session = ServerSession(
            self._settings,
            model=request.model_id,
            spec=request.spec,
            argv=request.argv,
            detachable=True,
            name=self.server_name,
            origin="console",
        )
        self._session = session
        try:
            async with contextlib.aclosing(session.events()) as events:
                async for event in events:
                    if self._session is session:  # a newer launch owns the screen otherwise
                        self._show(event, session)
        except Exception as exc:  # a bug of ours: said on screen, not lost in the worker
            if self._session is session:
                self._set_state(phase=Phase.FAILED, note=f"the server pane failed: {exc}")
            raise
        finally:
            if self._session is session:
                self._session = None

    def _show(self, event: SessionEvent, session: ServerSession) -> None:
        if isinstance(event, LogLine):
            self.log_view.feed(line for line in event.lines if not is_poll(line))
        elif isinstance(event, PhaseChanged):
            times = session.phase_times
            if event.phase in (Phase.STOPPED, Phase.FAILED):
                # said with the session's end, which knows whether the stop was clean
                self._set_state(phase_times=times)
            else:
                self._set_state(phase=event.phase, phase_since=time.monotonic(), phase_times=times)
        elif isinstance(event, Ready):
            self._set_state(ready_at=time.monotonic())
        elif isinstance(event, Stalled):
            self._set_state(findings=(*self.state.findings, event.finding))
        elif isinstance(event, SessionEnded):
            self._show_end(event)

    def _show_end(self, ended: SessionEnded) -> None:
        if ended.status == LEFT_RUNNING:
            self._set_state(note=ended.note)
            return
        self._set_state(
            phase=ended.phase,
            phase_since=time.monotonic(),
            phase_times=ended.phase_times,
            findings=(*self.state.findings, *ended.findings),
            note=ended.note,
        )

    @work(exclusive=True, group="server", exit_on_error=False)
    async def _follow_run(self, run: RunInfo) -> None:
        await attached.watch(run, WithoutPolls(self.log_view), self._attached_update)

    def _attached_update(self, phase: Phase, note: str) -> None:
        if phase is not self.state.phase:
            now = time.monotonic()
            ready_at = now if phase is Phase.READY else None
            self._set_state(phase=phase, phase_since=now, ready_at=ready_at, note=note)

    @work(exclusive=True, group="server-stop", exit_on_error=False)
    async def _stop_attached(self, run_id: str) -> None:
        self._set_state(phase=Phase.STOPPING, phase_since=time.monotonic())
        report = await attached.stop(self._settings, run_id)
        if self._worker is not None:
            self._worker.cancel()
        phase = Phase.STOPPED if report.clean else Phase.FAILED
        note = f"stopped in {report.seconds:.1f} s" if report.clean else "processes left alive"
        self._set_state(phase=phase, phase_since=time.monotonic(), note=note)

    # -- keys -----------------------------------------------------------------------------

    def action_toggle_follow(self) -> None:
        log = self.log_view
        log.auto_scroll = not log.auto_scroll
        if log.auto_scroll:
            log.scroll_end(animate=False)
        self.notify("Following the log." if log.auto_scroll else "Paused: the log stays put.")

    def action_toggle_problems(self) -> None:
        log = self.log_view
        log.problems_only = not log.problems_only
        shown = "warnings and errors only" if log.problems_only else "all lines"
        self.notify(f"Showing {shown}.")

    def action_search(self) -> None:
        field = self.query_one("#log-search", Input)
        field.add_class("-shown")
        self.screen.set_focus(field)

    @on(Input.Changed, "#log-search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.log_view.search = event.value

    @on(Input.Submitted, "#log-search")
    def _search_submitted(self) -> None:
        self.log_view.focus()

    def key_escape(self) -> None:
        field = self.query_one("#log-search", Input)
        if field.has_class("-shown"):
            field.value = ""
            field.remove_class("-shown")
            self.log_view.focus()

    def action_save_log(self) -> None:
        self._save_log(self.log_view.all_lines)

    @work(thread=True, exclusive=True, group="save-log", exit_on_error=False)
    def _save_log(self, lines: list[str]) -> None:
        folder = self._settings.runs_dir.parent / "saved-logs"
        path = folder / time.strftime("server-log-%Y%m%d-%H%M%S.txt")
        try:  # private, as the rest of the state folder
            private_dir(folder, owned=self._settings.runs_dir.parent)
            write_private(Path(path), "".join(line + "\n" for line in lines))
        except OSError as exc:
            failed = visible(str(exc))
            self.app.call_from_thread(self.notify, failed, severity="error", markup=False)
            return
        saved = visible(f"Saved {len(lines)} lines to {path}")
        self.app.call_from_thread(self.notify, saved, markup=False)
