"""Watching and stopping a server that an earlier console left running.

We did not start it, so there is no pipe to read: its log is the run's `log.txt` (the
watchdog keeps appending to it), read from the end; readiness is its `/health`. Stopping it
goes through the process group, as `ServerProcess.stop` does for our own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from vllm_console.config import Settings
from vllm_console.core.files import read_range
from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.serve.process import StopReport, health_url, is_healthy, stop_group
from vllm_console.core.serve.runs import RunArchive, RunInfo, RunRecorder

TAIL_BYTES = 256 * 1024
STOPPED_FROM_OUTSIDE = "stopped by the user (from another console or vllm-console stop)"
POLL_INTERVAL = 1.0


class LogSink(Protocol):
    """Where the followed log goes (the server pane's log view)."""

    def reset(self, lines: Iterable[str] = ()) -> None: ...
    def feed(self, lines: Iterable[str]) -> None: ...


def listen_host(argv: tuple[str, ...]) -> str:
    """The --host of a recorded command line (vLLM's default when absent)."""
    for flag, value in itertools.pairwise(argv):
        if flag == "--host":
            return value
    return "127.0.0.1"


def read_from(path: Path, offset: int) -> tuple[list[str], int]:
    """Complete lines after `offset` (from the last TAIL_BYTES when offset is 0), new offset.

    At most TAIL_BYTES a call, from a regular file only, opened without blocking (a FIFO
    named log.txt must not hang the follower); a line longer than that comes in pieces.
    """
    try:
        data, start = read_range(path, offset, TAIL_BYTES)
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    if end == 0 and len(data) == TAIL_BYTES:  # no end of line in sight: take it as it is
        end = len(data)
    text = data[:end].decode("utf-8", "replace")
    lines = [part for raw in text.splitlines() for part in raw.split("\r") if part.strip()]
    return lines, start + end


async def watch(run: RunInfo, log: LogSink, update: Callable[[Phase, str], None]) -> None:
    """Follow the run's log file and health until its processes are gone."""
    url = health_url(listen_host(run.argv), run.port or 8000)
    lines, offset = await asyncio.to_thread(read_from, run.log_path, 0)
    log.reset(lines)
    while True:
        alive = await asyncio.to_thread(run.alive_pids)
        if not alive:
            update(Phase.STOPPED, "the server is gone")
            return
        healthy = await is_healthy(url, timeout=1.0)
        update(Phase.READY if healthy else Phase.STARTING, f"attached to run {run.id}")
        more, offset = await asyncio.to_thread(read_from, run.log_path, offset)
        log.feed(more)
        await asyncio.sleep(POLL_INTERVAL)


async def stop(settings: Settings, run_id: str) -> StopReport:
    """Stop the recorded run's process group and record it as stopped."""
    run = await asyncio.to_thread(RunArchive(settings.runs_dir).get, run_id)
    if run is None or run.pid is None:
        return StopReport(0.0, False, (), None)
    with contextlib.suppress(OSError):  # its owner, if any, then knows the exit was asked for
        run.ask_stop(STOPPED_FROM_OUTSIDE)
    report = await stop_any(run.pid, settings.stop_timeout)
    if report.clean:
        recorder = await asyncio.to_thread(RunRecorder, run)
        recorder.finish(
            status="stopped",
            returncode=None,
            reason="stopped by the user (attached)",
            phases=run.phases,
            findings=run.findings,
        )
    return report


async def stop_any(pgid: int, grace: float) -> StopReport:
    """`stop_group`, with a refusal (our own group) turned into a report of survivors."""
    try:
        return await stop_group(pgid, grace)
    except ValueError:
        return StopReport(0.0, False, (pgid,), None)


def age(run: RunInfo) -> str:
    minutes = int((time.time() - run.started) // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"
