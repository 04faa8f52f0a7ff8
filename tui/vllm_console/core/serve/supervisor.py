"""Watch a running ServerProcess and turn what it does into events.

Events, in order: log lines, phase changes (from the log's milestones), Ready (once `/health`
answers 200), Stalled (no progress for a while and the log points at the model hub), and
Exited with the findings of the diagnosis. A server left running (detached) just ends the
events, with no Exited. `ServerSession` consumes these for the console and the headless
`serve`, so they see the same phases and give the same advice.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from vllm_console.core.serve.diagnose import LINE_CAP, Finding, Phase, diagnose, next_phase
from vllm_console.core.serve.process import ServerProcess, wait_healthy

TAIL_LINES = 500
_HUB_HINT = re.compile(
    r"huggingface\.co|HF_ENDPOINT|hf-mirror|Retrying|Max retries|snapshot_download|"
    r"modelscope\.cn|couldn't connect|ConnectTimeout|Connection refused|Read timed out",
    re.I,
)
HUB_STALL = Finding(
    "hub-stalled",
    "No progress for a while, and the log shows attempts to reach the model hub: the hub is "
    "probably unreachable from here.",
    "Launch from a local path, set HF_ENDPOINT to a mirror you can reach, download from "
    "ModelScope instead (VLLM_CONSOLE_HUB=modelscope: VLLM_USE_MODELSCOPE=True), or go "
    "offline (HF_HUB_OFFLINE=1) with the model already downloaded.",
    "",
)


@dataclass(frozen=True)
class LogLine:
    """Lines of the log, as many as arrived together (one event per line would cost more
    than the lines themselves when a server writes thousands a second)."""

    lines: tuple[str, ...]


@dataclass(frozen=True)
class PhaseChanged:
    phase: Phase
    previous: Phase
    previous_seconds: float


@dataclass(frozen=True)
class Ready:
    url: str
    seconds: float


@dataclass(frozen=True)
class Stalled:
    finding: Finding
    seconds: float


@dataclass(frozen=True)
class Exited:
    returncode: int | None
    findings: tuple[Finding, ...]
    was_ready: bool


Event = LogLine | PhaseChanged | Ready | Stalled | Exited


class Supervisor:
    """Reads lines and polls health for one server; `events()` yields until it exits."""

    def __init__(self, server: ServerProcess, health_url: str, stall_timeout: float = 60.0):
        self.server = server
        self.health_url = health_url
        self.stall_timeout = stall_timeout
        self.phase = Phase.STARTING
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.phase_times: list[tuple[Phase, float]] = []
        self._phase_since = time.monotonic()
        self._start = time.monotonic()
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._ready = False
        self._stalled = False

    def _set_phase(self, phase: Phase) -> None:
        now = time.monotonic()
        previous, spent = self.phase, now - self._phase_since
        self.phase_times.append((previous, spent))
        self.phase, self._phase_since = phase, now
        self._queue.put_nowait(PhaseChanged(phase, previous, spent))

    async def _read(self) -> None:
        async for batch in self.server.batches():
            # all the diagnosis reads of a line
            self.tail.extend(line[:LINE_CAP] for line in batch[-TAIL_LINES:])
            if self._ready:
                self._queue.put_nowait(LogLine(tuple(batch)))
                continue
            # A milestone splits the batch: the phase changes between the lines around it.
            start = 0
            for i, line in enumerate(batch):
                phase = next_phase(self.phase, line)
                if phase is not self.phase:
                    self._queue.put_nowait(LogLine(tuple(batch[start : i + 1])))
                    start = i + 1
                    self._set_phase(phase)
            if start < len(batch):
                self._queue.put_nowait(LogLine(tuple(batch[start:])))

    async def _health(self) -> None:
        if await wait_healthy(self.server, self.health_url):
            self._ready = True
            self._set_phase(Phase.READY)
            self._queue.put_nowait(Ready(self.health_url, time.monotonic() - self._start))

    async def _watch_stall(self) -> None:
        while not self._ready and not self._stalled:
            await asyncio.sleep(min(1.0, self.stall_timeout / 4))
            idle = time.monotonic() - self._phase_since
            if idle >= self.stall_timeout and any(_HUB_HINT.search(t) for t in self.tail):
                self._stalled = True
                self._queue.put_nowait(Stalled(HUB_STALL, idle))

    async def _run(self) -> None:
        helpers = [asyncio.create_task(self._health()), asyncio.create_task(self._watch_stall())]
        try:
            await self._read()
            # Left running (detached): its exit is no longer ours to wait for or judge.
            returncode = None if self.server.detached else await self.server.wait()
        finally:
            for task in helpers:
                task.cancel()
            for task in helpers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.server.detached:
            self._queue.put_nowait(None)
            return
        findings = tuple(diagnose(self.tail))
        # Asked to stop: stopped. Otherwise any exit, even code 0, is a failure of the server.
        self._set_phase(Phase.STOPPED if self.phase is Phase.STOPPING else Phase.FAILED)
        self._queue.put_nowait(Exited(returncode, findings, self._ready))
        self._queue.put_nowait(None)

    def mark_stopping(self) -> None:
        """A stop was asked: an exit from now on counts as stopped, not failed."""
        if self.phase not in (Phase.STOPPING, Phase.STOPPED, Phase.FAILED):
            self._set_phase(Phase.STOPPING)

    async def events(self) -> AsyncGenerator[Event, None]:
        runner = asyncio.create_task(self._run())
        try:
            while (event := await self._queue.get()) is not None:
                yield event
        finally:
            if not runner.done():
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
