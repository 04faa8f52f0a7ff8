"""The registry of running servers against the stand-in vLLM: live ones listed with their
health, stale records finished as gone, a server left running listed too."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.fakes.net import free_port

from vllm_console.config import Settings
from vllm_console.core.fleet.registry import (
    GONE_REASON,
    SPAWN_GRACE,
    find,
    list_servers,
    uptime_text,
)
from vllm_console.core.serve.attach import stop
from vllm_console.core.serve.proctable import session_pids
from vllm_console.core.serve.runs import RunArchive
from vllm_console.core.serve.session import ServerSession, SessionEvent, Spawned
from vllm_console.core.serve.spec import LaunchSpec, serve_args
from vllm_console.core.serve.supervisor import PhaseChanged, Ready

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_vllm.py"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, state_dir=tmp_path / "state", stop_timeout=3.0)


@pytest.fixture
def pids() -> Iterator[list[int]]:
    started: list[int] = []
    yield started
    for pid in started:
        if session_pids(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def session(
    settings: Settings, name: str, *, delay: float = 0.2, detachable: bool = False
) -> ServerSession:
    env = {"FAKE_VLLM_DELAY": str(delay)}
    spec = LaunchSpec("/m/tiny", port=free_port(), gpus=(1, 3), extra_env=env)
    argv = [sys.executable, str(FAKE), "serve", *serve_args(spec)]
    return ServerSession(
        settings,
        model="org/tiny",
        spec=spec,
        argv=argv,
        detachable=detachable,
        name=name,
        origin="up fleet.yaml",
    )


@contextlib.asynccontextmanager
async def running(
    server: ServerSession, pids: list[int], until: type = Ready
) -> AsyncIterator[ServerSession]:
    """The session's events read in a task until `until` comes; stopped on the way out."""
    reached = asyncio.Event()

    async def read() -> None:
        async with contextlib.aclosing(server.events()) as events:
            async for event in events:
                note(event)

    def note(event: SessionEvent) -> None:
        if isinstance(event, Spawned):
            pids.append(event.pid)
        if isinstance(event, until):
            reached.set()

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(reached.wait(), 20)
        yield server
    finally:
        server.stop()
        await asyncio.wait_for(task, 20)


async def test_a_live_server_is_listed_with_its_health(settings: Settings, pids: list[int]) -> None:
    async with (
        running(session(settings, "slow", delay=30), pids, PhaseChanged) as slow,
        running(session(settings, "chat"), pids) as chat,
    ):
        entries = await list_servers(settings)
        by_name = {entry.name: entry for entry in entries}
        assert sorted(by_name) == ["chat", "slow"]
        ready, starting = by_name["chat"], by_name["slow"]
        assert ready.status == "ready" and starting.status == "starting"
        assert ready.pid == chat.pid and starting.pid == slow.pid
        assert ready.port == chat.spec.port and ready.gpus == (1, 3)
        assert ready.url == f"http://127.0.0.1:{chat.spec.port}/v1"
        assert ready.origin == "up fleet.yaml" and ready.model == "org/tiny"
        assert ready.recorded == "running" and 0 <= ready.uptime < 20
        data = json.loads(json.dumps(ready.to_json()))
        assert data["name"] == "chat" and data["gpus"] == [1, 3] and data["status"] == "ready"
        assert data["run_id"] == ready.run_id and data["uptime_s"] >= 0
    assert await list_servers(settings) == []  # stopped: recorded so, nothing to drop


def record(settings: Settings, name: str, *, pid: int | None, age: float = 0.0) -> Path:
    """A run recorded as running, as a console that died unseen would leave it."""
    recorder = RunArchive(settings.runs_dir).new("org/tiny", ["vllm", "serve"], {}, 8000, name=name)
    recorder.update(pid=pid, started=time.time() - age)
    return recorder.info.dir


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


async def test_stale_records_are_dropped_and_finished_as_gone(settings: Settings) -> None:
    dead = record(settings, "dead", pid=dead_pid())
    young = record(settings, "young", pid=None)
    old = record(settings, "old", pid=None, age=SPAWN_GRACE + 1)
    assert await list_servers(settings) == []
    runs = {run.name: run for run in RunArchive(settings.runs_dir).all()}
    for gone in ("dead", "old"):
        assert runs[gone].status == "failed" and runs[gone].reason == GONE_REASON
        assert runs[gone].ended is not None
    assert runs["young"].status == "running"  # between its record and its spawn: left alone
    assert {dead, young, old} == {run.dir for run in runs.values()}


async def test_a_server_left_running_is_listed_and_stopped(
    settings: Settings, pids: list[int]
) -> None:
    left = session(settings, "left", detachable=True)
    async with running(left, pids):
        assert left.detach()
    (entry,) = await list_servers(settings)
    assert entry.name == "left" and entry.recorded == "left running" and entry.status == "ready"
    report = await stop(settings, entry.run_id)
    assert report.clean and session_pids(entry.pid) == []
    assert await list_servers(settings) == []
    (run,) = RunArchive(settings.runs_dir).all()
    assert run.status == "stopped"


async def test_find_takes_a_run_id_or_a_name(settings: Settings, pids: list[int]) -> None:
    async with running(session(settings, "chat"), pids), running(session(settings, "chat"), pids):
        entries = await list_servers(settings)
    assert len(find(entries, "chat")) == 2
    assert find(entries, entries[1].run_id) == [entries[1]]
    assert find(entries, "nobody") == []


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(0, "0s"), (59.9, "59s"), (60, "1m"), (3599, "59m"), (3660, "1h01m"), (90000, "1d01h")],
)
def test_uptime_fits_a_column(seconds: float, said: str) -> None:
    assert uptime_text(seconds) == said
