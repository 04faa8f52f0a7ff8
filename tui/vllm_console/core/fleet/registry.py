"""The servers any console, `serve` or `up` started on this machine, for `ps` and `stop`.

The run archive is the list: a run recorded as "running" or "left running" whose process
session is alive is a server, and its `/health` says whether it is ready (all checked at
once, each with a short timeout). A record that says running while its processes are gone
is stale: left out, and finished in the archive as failed ("gone") so it is not checked again.
A record still without a pid is a launch between its record and its spawn: left alone for
SPAWN_GRACE seconds, then stale too.

Runs are files on disk, read without trust by the archive; a name or model from them is
shown through `core.text.visible` by whoever prints it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from vllm_console.config import Settings
from vllm_console.core.files import read_capped
from vllm_console.core.fleet.up import api_url
from vllm_console.core.serve.attach import listen_host
from vllm_console.core.serve.process import health_url, is_healthy
from vllm_console.core.serve.runs import (
    LEFT_RUNNING,
    META_LIMIT,
    RUNNING,
    RunArchive,
    RunInfo,
    RunRecorder,
    parse_record,
)

HEALTH_TIMEOUT = 1.0
SPAWN_GRACE = 60.0  # seconds a record may go without a pid before it counts as gone
GONE_REASON = "its processes were gone when listed"
READY = "ready"
STARTING = "starting"


@dataclass(frozen=True)
class Entry:
    """One live server. `status` is "ready" (its /health answers) or "starting";
    `recorded` is its record's status ("running", or "left running" by a console)."""

    name: str
    model: str
    pid: int
    port: int | None
    url: str | None
    gpus: tuple[int, ...] | None
    origin: str | None
    status: str
    started: float
    run_id: str
    recorded: str

    @property
    def uptime(self) -> float:
        return max(0.0, time.time() - self.started)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "pid": self.pid,
            "port": self.port,
            "url": self.url,
            "gpus": None if self.gpus is None else list(self.gpus),
            "origin": self.origin,
            "status": self.status,
            "uptime_s": round(self.uptime, 1),
            "run_id": self.run_id,
            "recorded": self.recorded,
        }


def live_runs(settings: Settings) -> list[RunInfo]:
    """Runs recorded as running whose processes live, newest first; stale ones finished."""
    live: list[RunInfo] = []
    for run in RunArchive(settings.runs_dir).all():
        if run.status not in (RUNNING, LEFT_RUNNING):
            continue
        if run.alive_pids():
            live.append(run)
        elif run.pid is not None or time.time() - run.started > SPAWN_GRACE:
            finish_gone(run)
    return live


def finish_gone(run: RunInfo) -> None:
    """Record a run whose processes are gone as failed, unless its owner said how it ended
    since we read it (it ends its record once its processes are gone, as we saw them)."""
    try:
        current = parse_record(run.dir, read_capped(run.dir / "run.json", META_LIMIT))
        if current is None or current.status not in (RUNNING, LEFT_RUNNING):
            return
        RunRecorder(current).finish(
            status="failed",
            returncode=current.returncode,
            reason=GONE_REASON,
            phases=current.phases,
            findings=current.findings,
        )
    except OSError:  # a record we cannot write is listed again next time; nothing worse
        return


async def list_servers(settings: Settings, *, timeout: float = HEALTH_TIMEOUT) -> list[Entry]:
    """Every live server recorded in the archive, its health checked (all at once)."""
    runs = await asyncio.to_thread(live_runs, settings)
    checks = [is_healthy(_health(run), timeout=timeout) for run in runs]
    healthy = await asyncio.gather(*checks)
    return [_entry(run, ok) for run, ok in zip(runs, healthy, strict=True)]


def _health(run: RunInfo) -> str:
    return health_url(listen_host(run.argv), run.port or 8000)


def _entry(run: RunInfo, healthy: bool) -> Entry:
    assert run.pid is not None  # a live run has a pid: its session's id
    return Entry(
        name=run.server_name,
        model=run.model,
        pid=run.pid,
        port=run.port,
        url=api_url(listen_host(run.argv), run.port) if run.port else None,
        gpus=run.gpus,
        origin=run.origin,
        status=READY if healthy else STARTING,
        started=run.started,
        run_id=run.id,
        recorded=run.status,
    )


def find(entries: list[Entry], wanted: str) -> list[Entry]:
    """The entries a `stop` argument names: a run id (exactly one), else a server name."""
    by_id = [e for e in entries if e.run_id == wanted]
    return by_id or [e for e in entries if e.name == wanted]


def uptime_text(seconds: float) -> str:
    """42s, 5m, 1h02m, 3d04h: a column's width, precise enough to tell runs apart."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
