"""The server pane: one vLLM server's status line, diagnosis and live log.

The server lives inside an async worker (started from the event-loop thread, so the child
is forked there) as the `async with` of a `ServerProcess`: cancelling the worker stops the
server. The worker consumes the Supervisor's events exactly as the headless `serve` does,
writes the run archive, and reports its state upwards as `ServerPane.StateChanged`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static
from textual.worker import Worker, WorkerState

from vllm_console.config import Settings
from vllm_console.core.serve import attach as attached
from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.serve.process import ServerProcess, StopReport, health_url
from vllm_console.core.serve.runs import RunArchive, RunInfo, RunRecorder
from vllm_console.core.serve.spec import LaunchRequest, launch_env, redact_env
from vllm_console.core.serve.supervisor import (
    Exited,
    LogLine,
    PhaseChanged,
    Ready,
    Stalled,
    Supervisor,
)
from vllm_console.widgets.server.log_view import BufferedLog
from vllm_console.widgets.server.status import (
    ServerState,
    findings_text,
    phases_line,
    status_line,
)
from vllm_console.widgets.worker_errors import ReportsWorkerErrors

RECORD_BATCH = 200  # log lines written to the run archive at once


class ServerPane(ReportsWorkerErrors, Vertical):
    """Status line, phase times, findings, a search field and the log of the server."""

    BINDINGS = [
        Binding("p", "toggle_follow", "Pause", id="server.follow"),
        Binding("w", "toggle_problems", "Warnings", id="server.problems"),
        Binding("slash", "search", "Search log", id="server.search"),
        Binding("ctrl+s", "save_log", "Save log", id="server.save"),
    ]

    class StateChanged(Message):
        """The server's phase, findings or note changed."""

        def __init__(self, state: ServerState) -> None:
            super().__init__()
            self.state = state

    def __init__(self, settings: Settings, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._settings = settings
        self.state = ServerState()
        self._server: ServerProcess | None = None
        self._recorder: RunRecorder | None = None
        self._stop_requested: asyncio.Event | None = None
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
        return self.query_one("#server-log", BufferedLog)

    # -- state ----------------------------------------------------------------------------

    def _set_state(self, **changes: object) -> None:
        self.state = replace(self.state, **changes)  # type: ignore[arg-type]
        self.query_one("#server-status", Static).update(status_line(self.state))
        self.query_one("#server-phases", Static).update(phases_line(self.state))
        findings = self.query_one("#server-findings", Static)
        findings.update(findings_text(self.state))
        findings.display = bool(self.state.findings)
        self.post_message(self.StateChanged(self.state))

    def _tick(self) -> None:
        if self.state.running:
            self.query_one("#server-status", Static).update(status_line(self.state))

    # -- public, called by the App --------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The launched server's PID (its session id too); None when none of ours runs."""
        server = self._server
        return server.pid if server is not None else None

    def launch(self, request: LaunchRequest) -> None:
        now = time.monotonic()
        url = health_url(request.spec.host, request.spec.port).removesuffix("/health") + "/v1"
        self.log_view.reset()
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
        elif self._stop_requested is not None:
            self._stop_requested.set()

    async def wait_idle(self) -> None:
        """Until the server worker has finished (after `stop`, say)."""
        worker = self._worker
        if worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING):
            with contextlib.suppress(Exception):
                await worker.wait()

    def detach(self) -> bool:
        """Leave our server running past our exit; recorded as "left running"."""
        server, recorder = self._server, self._recorder
        if server is None or recorder is None or not server.detach():
            return False
        recorder.write_lines([])
        recorder.leave_running(
            phases=[(str(p), t) for p, t in self.state.phase_times],
            reason="left running when the console quit",
        )
        self._recorder = None
        self._set_state(note="left running")
        return True

    def attach(self, run: RunInfo) -> None:
        """Watch a server left by an earlier console: its recorded log and its /health."""
        now = time.monotonic()
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
        settings, spec = self._settings, request.spec
        recorder = RunArchive(settings.runs_dir).new(request.model_id, request.argv, {}, spec.port)
        env = launch_env(spec, hf_endpoint=settings.hf_endpoint, run_dir=recorder.info.dir)
        recorder.update(env=redact_env(env))
        self._recorder = recorder
        server = ServerProcess(
            request.argv,
            env,
            detachable=True,
            watchdog_grace=min(settings.stop_timeout, 15.0),
            detached_log=recorder.info.log_path,
        )
        self._stop_requested = requested = asyncio.Event()
        exited: Exited | None = None
        report: StopReport | None = None
        supervisor: Supervisor | None = None
        try:
            async with server:
                self._server = server
                recorder.update(pid=server.pid)
                supervisor = Supervisor(
                    server, health_url(spec.host, spec.port), settings.stall_timeout
                )
                stopper = asyncio.create_task(self._stop_when(requested, server, supervisor))
                try:
                    exited = await self._consume(supervisor, recorder)
                finally:
                    if requested.is_set():  # the stop in progress decides what is said
                        with contextlib.suppress(Exception):
                            report = await stopper
                    stopper.cancel()
                if report is None and not server.detached:
                    report = await server.stop(settings.stop_timeout)
        finally:
            self._server = None
            if not server.detached and self._recorder is recorder:
                self._recorder = None
                self._finish(recorder, supervisor, exited, report, requested.is_set())

    async def _consume(self, supervisor: Supervisor, recorder: RunRecorder) -> Exited | None:
        pending: list[str] = []
        last_write = time.monotonic()
        exited: Exited | None = None
        log = self.log_view
        try:
            async for event in supervisor.events():
                if isinstance(event, LogLine):
                    log.feed((event.text,))
                    pending.append(event.text)
                    if len(pending) < RECORD_BATCH and time.monotonic() - last_write < 0.25:
                        continue
                elif isinstance(event, PhaseChanged):
                    self._on_phase(event, supervisor)
                elif isinstance(event, Ready):
                    self._set_state(ready_at=time.monotonic())
                elif isinstance(event, Stalled):
                    self._set_state(findings=(*self.state.findings, event.finding))
                elif isinstance(event, Exited):
                    exited = event
                recorder.write_lines(pending)
                pending.clear()
                last_write = time.monotonic()
        finally:
            recorder.write_lines(pending)
        return exited

    def _on_phase(self, event: PhaseChanged, supervisor: Supervisor) -> None:
        times = tuple((str(p), t) for p, t in supervisor.phase_times)
        if event.phase in (Phase.STOPPED, Phase.FAILED):
            # "stopped" is said only once the whole session is gone: see _finish.
            self._set_state(phase_times=times)
            return
        self._set_state(phase=event.phase, phase_since=time.monotonic(), phase_times=times)

    async def _stop_when(
        self, requested: asyncio.Event, server: ServerProcess, supervisor: Supervisor
    ) -> StopReport:
        await requested.wait()
        supervisor.mark_stopping()
        return await server.stop(self._settings.stop_timeout)

    def _finish(
        self,
        recorder: RunRecorder,
        supervisor: Supervisor | None,
        exited: Exited | None,
        report: StopReport | None,
        asked: bool,
    ) -> None:
        findings = exited.findings if exited else ()
        code = exited.returncode if exited else None
        clean = report is None or report.clean
        if asked:
            status, reason = "stopped", "stopped by the user"
            took = f"{report.seconds:.1f} s" if report else "?"
            killed = ", killed after the grace period" if report and report.killed else ""
            note = f"stopped in {took}{killed}"
        else:
            status, reason = "failed", f"vLLM exited with code {code}"
            note = f"exit code {code}"
        if not clean and report is not None:
            note += f"; processes still alive: {', '.join(map(str, report.survivors))}"
        phases = supervisor.phase_times if supervisor else []
        with contextlib.suppress(OSError):
            recorder.finish(
                status=status,
                returncode=code,
                reason=reason,
                phases=[(str(p), t) for p, t in phases],
                findings=[f.cause for f in findings],
            )
        phase = Phase.STOPPED if asked and clean else Phase.FAILED
        self._set_state(
            phase=phase,
            phase_since=time.monotonic(),
            phase_times=tuple((str(p), t) for p, t in phases),
            findings=(*self.state.findings, *findings),
            note=note,
        )

    @work(exclusive=True, group="server", exit_on_error=False)
    async def _follow_run(self, run: RunInfo) -> None:
        await attached.watch(run, self.log_view, self._attached_update)

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
        try:
            folder.mkdir(parents=True, exist_ok=True)
            Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        except OSError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self.notify, f"Saved {len(lines)} lines to {path}")
