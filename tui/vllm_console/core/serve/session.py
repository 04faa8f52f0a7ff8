"""ServerSession: one `vllm serve` from launch to end, for whoever shows it.

The console's server pane and the headless `serve` both run a server through this class, so
they agree on what a run is: spawn (`ServerProcess`), supervise (`Supervisor`), record (the run
archive), stop, leave running (`detach`) and finish. The owner reads `events()`: the
Supervisor's events, `Spawned` once the process runs, and always one `SessionEnded` last.

Four rules live here and nowhere else:

- A run counts as stopped when its stop was asked before vLLM exited on its own and no process
  of its session is left. Anything else is a failure, even an exit with code 0.
- The log reaches the archive in batches: RECORD_BATCH lines, or RECORD_INTERVAL seconds since
  the last write, or any other event, whichever comes first.
- The server's output is redacted (the API key becomes ***) before anything sees it: the
  session hands its keys to the process, which redacts each line as it reads it (and the
  watchdog, what it copies to log.txt). So the log pane, `serve`'s stdout, the archive and
  the diagnosis never get the key.
- Nothing raises out of `events()` (cancellation aside): a run folder that cannot be written,
  a vLLM that cannot be started, or a bug here ends the session as failed with the reason, and
  a process that was started is stopped first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, replace

from vllm_console.config import Settings
from vllm_console.core.serve.diagnose import Finding, Phase
from vllm_console.core.serve.process import ServerProcess, StopReport, health_url
from vllm_console.core.serve.redact import redact_env
from vllm_console.core.serve.runs import LEFT_RUNNING, RunArchive, RunInfo, RunRecorder
from vllm_console.core.serve.spec import LaunchSpec, api_key_of, launch_env
from vllm_console.core.serve.supervisor import Event, Exited, LogLine, Supervisor

RECORD_BATCH = 200  # log lines written to the run archive at once
RECORD_INTERVAL = 0.25  # seconds a line may wait for its batch
STOPPED = "stopped"
FAILED = "failed"
ASKED_BY_USER = "stopped by the user"
ASKED_BY_OWNER = "stopped as its session was closed"
LEFT_REASON = "left running when the console quit"


@dataclass(frozen=True)
class Spawned:
    """vLLM runs: its pid (also its process group and session) and the run's record."""

    pid: int
    run: RunInfo


@dataclass(frozen=True)
class SessionEnded:
    """How the session ended; always the last event.

    `status` is "stopped", "failed" or "left running" (as recorded in the archive); `reason`
    is the sentence for a log or stderr, `note` the short form for a status line.
    """

    status: str
    reason: str
    note: str
    returncode: int | None = None
    findings: tuple[Finding, ...] = ()
    report: StopReport | None = None
    phase_times: tuple[tuple[str, float], ...] = ()
    run: RunInfo | None = None

    @property
    def stopped(self) -> bool:
        return self.status == STOPPED

    @property
    def phase(self) -> Phase:
        """The phase a screen shows for this end (a server left running is still ready)."""
        if self.status == LEFT_RUNNING:
            return Phase.READY
        return Phase.STOPPED if self.stopped else Phase.FAILED


SessionEvent = Event | Spawned | SessionEnded


class SessionError(Exception):
    """A failure of the session itself (not of vLLM), worded for the user."""


class ServerSession:
    """One server. Read `events()` inside `contextlib.aclosing`: leaving early stops it."""

    def __init__(
        self,
        settings: Settings,
        *,
        model: str,
        spec: LaunchSpec,
        argv: Sequence[str],
        detachable: bool = False,
        name: str | None = None,
        origin: str | None = None,
    ) -> None:
        """`name`: the server's in its fleet (recorded with the run); `origin`: who started
        it ("console", "up FILE"), for `ps`."""
        self.settings = settings
        self.name = name
        self.origin = origin
        self.model = model
        self.spec = spec
        self.argv = tuple(argv)
        self.detachable = detachable
        self.ended: SessionEnded | None = None
        self._server: ServerProcess | None = None
        self._supervisor: Supervisor | None = None
        self._recorder: RunRecorder | None = None
        self._asked: str | None = None  # why a stop was asked, once it was
        self._stop_asked = asyncio.Event()
        self._pending: list[str] = []
        self._last_write = time.monotonic()

    # -- what the owner may read or ask ---------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The server's pid while it is ours (None before spawn and after the end)."""
        server = self._server
        return server.pid if server is not None and self.ended is None else None

    @property
    def run(self) -> RunInfo | None:
        return self._recorder.info if self._recorder is not None else None

    @property
    def stopping(self) -> bool:
        """A stop was asked."""
        return self._asked is not None

    @property
    def detached(self) -> bool:
        """Left running: no longer ours to stop or record."""
        return self._server is not None and self._server.detached

    @property
    def phase_times(self) -> tuple[tuple[str, float], ...]:
        supervisor = self._supervisor
        return tuple((str(p), t) for p, t in supervisor.phase_times) if supervisor else ()

    def stop(self, reason: str = ASKED_BY_USER) -> None:
        """Ask for the stop: SIGTERM, the grace period, SIGKILL of the group. Idempotent."""
        if self._asked is not None or self.ended is not None or self.detached:
            return
        self._asked = reason
        if self._supervisor is not None:
            self._supervisor.mark_stopping()
        self._stop_asked.set()

    def detach(self) -> bool:
        """Leave the server running past our exit, recorded as "left running"; False when it
        cannot be: not detachable, not running, or a stop was asked."""
        server, recorder = self._server, self._recorder
        if server is None or recorder is None or self._asked is not None or self.ended:
            return False
        # Our lines go first: once told, the watchdog appends the rest of the output.
        with contextlib.suppress(SessionError):
            self._flush()
        if not server.detach():
            return False
        # A record that still says "running" is found as a leftover all the same.
        with contextlib.suppress(OSError):
            recorder.leave_running(reason=LEFT_REASON, phases=self.phase_times)
        return True

    # -- the run --------------------------------------------------------------------------

    async def events(self) -> AsyncGenerator[SessionEvent, None]:
        """What happens to the server, ending with one `SessionEnded`; never raises."""
        try:
            server = self._prepare()
        except Exception as exc:
            self._conclude(failure=describe(exc))
        else:
            async with contextlib.aclosing(self._supervise(server)) as events:
                async for event in events:
                    yield event
        assert self.ended is not None
        yield self.ended

    def _prepare(self) -> ServerProcess:
        """The run's record and the process to start; SessionError when either cannot be."""
        if not self.argv:
            raise SessionError("no vLLM command to run")
        settings, spec = self.settings, self.spec
        root = settings.runs_dir
        try:
            recorder = RunArchive(root).new(
                self.model, self.argv, {}, spec.port, name=self.name, gpus=spec.gpus,
                origin=self.origin, spec=spec,
            )  # fmt: skip
        except OSError as exc:
            why = exc.strerror or exc
            raise SessionError(f"cannot record the run under {root}: {why}") from exc
        self._recorder = recorder
        env = launch_env(
            spec,
            hf_endpoint=settings.hf_endpoint,
            run_dir=recorder.info.dir,
            hub=settings.hub,
            modelscope_endpoint=settings.modelscope_endpoint,
        )
        self._recorded(recorder.update, env=redact_env(env))
        return ServerProcess(
            self.argv,
            env,
            detachable=self.detachable,
            watchdog_grace=min(settings.stop_timeout, 15.0),
            detached_log=recorder.info.log_path,
            secrets=self.secrets,
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """What the log must never show: the launch's API key, and the settings' one."""
        keys = {api_key_of(self.spec), self.settings.api_key}
        return tuple(sorted(key for key in keys if key))

    async def _supervise(self, server: ServerProcess) -> AsyncGenerator[SessionEvent, None]:
        failure: str | None = None
        exited: Exited | None = None
        stopper: asyncio.Task[StopReport] | None = None
        try:
            if self._asked is None:
                await self._spawn(server)
                stopper = asyncio.create_task(self._stop_when_asked(server))
                supervisor = self._supervisor
                assert supervisor is not None and server.pid is not None and self.run is not None
                yield Spawned(server.pid, self.run)
                async with contextlib.aclosing(supervisor.events()) as events:
                    async for event in events:
                        self._record(event)
                        if isinstance(event, Exited):
                            exited = event
                        yield event
        except (asyncio.CancelledError, GeneratorExit):
            self.stop(ASKED_BY_OWNER)
            raise
        except Exception as exc:
            failure = describe(exc)
        finally:
            try:
                self._flush()
            except SessionError as exc:
                failure = failure or str(exc)
            report = await self._wind_down(server, stopper)
            self._conclude(exited=exited, report=report, failure=failure)

    async def _spawn(self, server: ServerProcess) -> None:
        settings, spec = self.settings, self.spec
        self._server = server
        try:
            await server.start()
        except OSError as exc:
            raise SessionError(f"cannot start vLLM ({self.argv[0]}): {exc}") from exc
        assert self._recorder is not None
        self._recorded(self._recorder.update, pid=server.pid)
        url = health_url(spec.host, spec.port)
        self._supervisor = Supervisor(server, url, settings.stall_timeout)

    async def _stop_when_asked(self, server: ServerProcess) -> StopReport:
        await self._stop_asked.wait()
        return await server.stop(self.settings.stop_timeout)

    async def _wind_down(
        self, server: ServerProcess, stopper: asyncio.Task[StopReport] | None
    ) -> StopReport | None:
        """Make sure no process is left, unless it was left running."""
        report: StopReport | None = None
        if stopper is not None:
            if self._asked is not None and not server.detached:
                # the stop in progress decides what is said
                with contextlib.suppress(Exception):
                    report = await asyncio.shield(stopper)
            stopper.cancel()
        if report is None and not server.detached and server.pid is not None:
            with contextlib.suppress(Exception):
                report = await asyncio.shield(server.stop(self.settings.stop_timeout))
        return report

    # -- the record -----------------------------------------------------------------------

    def _record(self, event: Event) -> None:
        """One batching rule for the log: see the module's docstring."""
        now = time.monotonic()
        if isinstance(event, LogLine):
            self._pending.extend(event.lines)
            if len(self._pending) < RECORD_BATCH and now - self._last_write < RECORD_INTERVAL:
                return
        self._flush()

    def _flush(self) -> None:
        recorder = self._recorder
        if recorder is None or self.detached:
            return
        lines, self._pending = self._pending, []
        self._last_write = time.monotonic()
        self._recorded(recorder.write_lines, lines)

    def _recorded(self, write: Callable[..., object], *args: object, **changes: object) -> None:
        """A write to the archive; an OSError becomes the session's reason to fail."""
        try:
            write(*args, **changes)
        except OSError as exc:
            run = self.run
            where = run.dir if run is not None else self.settings.runs_dir
            raise SessionError(f"cannot write the run record in {where}: {exc}") from exc

    # -- the end --------------------------------------------------------------------------

    def _conclude(
        self,
        *,
        exited: Exited | None = None,
        report: StopReport | None = None,
        failure: str | None = None,
    ) -> None:
        """Decide stopped or failed (the one rule), say why, and record it."""
        if self.ended is not None:
            return
        if self.detached:
            left = SessionEnded(LEFT_RUNNING, LEFT_REASON, "left running")
            self.ended = replace(left, phase_times=self.phase_times, run=self.run)
            return
        code = exited.returncode if exited else None
        status, reason, note = self._verdict(exited, report, failure)
        findings = exited.findings if exited else ()
        recorder = self._recorder
        if recorder is not None:
            with contextlib.suppress(OSError):  # the end is said all the same
                recorder.finish(
                    status=status,
                    returncode=code,
                    reason=reason,
                    phases=self.phase_times,
                    findings=[f.cause for f in findings],
                )
        self.ended = SessionEnded(
            status, reason, note, code, findings, report, self.phase_times, self.run
        )

    def _verdict(
        self, exited: Exited | None, report: StopReport | None, failure: str | None
    ) -> tuple[str, str, str]:
        """Status, reason and note: stopped only if asked before vLLM exited on its own and
        no process of its session is left."""
        supervisor = self._supervisor
        # Asked in time, the Supervisor ends in STOPPED; FAILED means vLLM exited first.
        on_its_own = exited is not None and supervisor is not None
        on_its_own = on_its_own and supervisor is not None and supervisor.phase is Phase.FAILED
        code = exited.returncode if exited else None
        outside = self._stop_asked_outside() if failure is None else None
        if failure is not None:
            status, reason, note = FAILED, failure, failure
        elif outside is not None and (self._asked is None or on_its_own):
            status, reason, note = STOPPED, outside, "stopped from outside"
        elif self._asked is None or on_its_own:
            status, reason, note = FAILED, f"vLLM exited with code {code}", f"exit code {code}"
        else:
            status, reason, note = STOPPED, self._asked, stopped_note(report)
        if report is not None and not report.clean:
            survivors = ", ".join(map(str, report.survivors))
            status = FAILED
            reason = f"{reason}; processes still alive after the stop: {survivors}"
            note = f"{note}; processes still alive: {survivors}"
        return status, reason, note

    def _stop_asked_outside(self) -> str | None:
        """Another process's stop of this run (see `RunInfo.ask_stop`), if there was one."""
        run = self.run
        return run.stop_asked() if run is not None else None


def stopped_note(report: StopReport | None) -> str:
    if report is None:
        return "stopped before it started"
    killed = ", killed after the grace period" if report.killed else ""
    return f"stopped in {report.seconds:.1f} s{killed}"


def describe(exc: BaseException) -> str:
    """A failure in words: ours are worded already, anything else is named by its type."""
    if isinstance(exc, SessionError):
        return str(exc)
    return f"the server session failed: {type(exc).__name__}: {exc}"
