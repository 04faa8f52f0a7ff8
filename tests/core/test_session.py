"""ServerSession against the stand-in vLLM: stopped, failed, and failures of its own."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fakes.net import free_port

from vllm_console.config import Settings
from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.serve.proctable import port_is_free, session_pids
from vllm_console.core.serve.runs import LEFT_RUNNING, RunArchive, RunRecorder
from vllm_console.core.serve.session import ServerSession, SessionEnded, SessionEvent, Spawned
from vllm_console.core.serve.spec import LaunchSpec, serve_args
from vllm_console.core.serve.supervisor import Exited, LogLine, PhaseChanged, Ready

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_vllm.py"


def make_session(
    settings: Settings, scenario: str = "ok", *, detachable: bool = False
) -> ServerSession:
    extra_env = {"FAKE_VLLM_SCENARIO": scenario, "FAKE_VLLM_DELAY": "0.3", "HF_TOKEN": "hf_x"}
    launch = LaunchSpec("/m/tiny", port=free_port(), extra_env=extra_env)
    argv = [sys.executable, str(FAKE), "serve", *serve_args(launch)]
    return ServerSession(settings, model="org/tiny", spec=launch, argv=argv, detachable=detachable)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, state_dir=tmp_path / "state", stop_timeout=3.0)


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """Servers the tests started: whatever is left of them is killed after."""
    started: list[int] = []
    yield started
    for pid in started:
        if session_pids(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


async def run_session(
    session: ServerSession, pids: list[int], *, stop_on_ready: bool = False, limit: float = 20.0
) -> list[SessionEvent]:
    events: list[SessionEvent] = []

    async def read() -> None:
        async with contextlib.aclosing(session.events()) as stream:
            async for event in stream:
                events.append(event)
                if isinstance(event, Spawned):
                    pids.append(event.pid)
                if isinstance(event, Ready) and stop_on_ready:
                    session.stop()

    await asyncio.wait_for(read(), limit)
    return events


async def test_ready_then_stop_is_stopped_and_recorded(settings: Settings, pids: list[int]) -> None:
    session = make_session(settings)
    events = await run_session(session, pids, stop_on_ready=True)
    (spawned,) = [e for e in events if isinstance(e, Spawned)]
    ended = events[-1]
    assert isinstance(ended, SessionEnded) and ended.stopped
    assert ended.phase is Phase.STOPPED and ended.reason == "stopped by the user"
    assert ended.note.startswith("stopped in") and ended.report and ended.report.clean
    assert [name for name, _ in ended.phase_times][-2:] == ["ready", "stopping"]
    phases = [e.phase for e in events if isinstance(e, PhaseChanged)]
    assert phases[-2:] == [Phase.STOPPING, Phase.STOPPED]
    assert session_pids(spawned.pid) == [] and port_is_free("127.0.0.1", session.spec.port)
    assert session.pid is None
    (run,) = RunArchive(settings.runs_dir).all()
    assert run.status == "stopped" and run.pid == spawned.pid and run.id == spawned.run.id
    assert run.env["HF_TOKEN"] == "***" and run.env["HF_HUB_OFFLINE"] == "1"
    logged = run.log_path.read_text().splitlines()
    assert logged == [line for e in events if isinstance(e, LogLine) for line in e.lines]
    assert ended.run is not None and ended.run.status == "stopped"


async def test_a_crash_is_failed_with_findings(settings: Settings, pids: list[int]) -> None:
    session = make_session(settings, "max_model_len")
    events = await run_session(session, pids)
    assert any(isinstance(e, Exited) for e in events)
    ended = events[-1]
    assert isinstance(ended, SessionEnded) and not ended.stopped
    assert ended.phase is Phase.FAILED and ended.returncode == 1
    assert ended.reason == "vLLM exited with code 1" and ended.note == "exit code 1"
    assert "max-model-len" in [f.rule for f in ended.findings]
    (run,) = RunArchive(settings.runs_dir).all()
    assert run.status == "failed" and run.returncode == 1
    assert any("KV cache cannot hold" in cause for cause in run.findings)


async def test_a_stop_asked_after_the_crash_is_still_a_failure(
    settings: Settings, pids: list[int]
) -> None:
    session = make_session(settings, "max_model_len")
    events: list[SessionEvent] = []
    async with contextlib.aclosing(session.events()) as stream:
        async for event in stream:
            events.append(event)
            if isinstance(event, Exited):
                session.stop()  # too late: vLLM had exited on its own
    ended = events[-1]
    assert isinstance(ended, SessionEnded) and ended.status == "failed"


@pytest.mark.parametrize("where", ["file", "nested"])
async def test_an_unwritable_state_folder_is_a_failed_session(
    tmp_path: Path, pids: list[int], where: str
) -> None:
    blocker = tmp_path / "state-file"
    blocker.write_text("a file where the state folder should be")
    state = blocker if where == "file" else blocker / "deeper"
    settings = Settings(home=tmp_path, state_dir=state, stop_timeout=3.0)
    session = make_session(settings)
    events = await run_session(session, pids, limit=5.0)
    (ended,) = events
    assert isinstance(ended, SessionEnded) and ended.status == "failed"
    assert ended.reason.startswith(f"cannot record the run under {settings.runs_dir}")
    assert ended.note == ended.reason and ended.run is None and session.pid is None


async def test_a_vllm_that_cannot_be_started_is_a_failed_session(
    settings: Settings, tmp_path: Path, pids: list[int]
) -> None:
    missing = str(tmp_path / "no-such-vllm")
    spec = LaunchSpec("/m/tiny", port=free_port())
    session = ServerSession(settings, model="m", spec=spec, argv=[missing, "serve", "/m/tiny"])
    events = await run_session(session, pids, limit=5.0)
    (ended,) = events
    assert isinstance(ended, SessionEnded) and ended.status == "failed"
    assert ended.reason.startswith(f"cannot start vLLM ({missing})")
    (run,) = RunArchive(settings.runs_dir).all()
    assert run.status == "failed" and run.reason == ended.reason


async def test_closing_the_events_stops_the_server(settings: Settings, pids: list[int]) -> None:
    session = make_session(settings)
    async with contextlib.aclosing(session.events()) as stream:
        async for event in stream:
            if isinstance(event, Spawned):
                pids.append(event.pid)
            if isinstance(event, Ready):
                break
    assert session.ended is not None and session.ended.stopped
    assert session_pids(pids[0]) == []
    (run,) = RunArchive(settings.runs_dir).all()
    assert run.status == "stopped" and run.reason == session.ended.reason


async def test_detach_leaves_it_running_and_recorded(settings: Settings, pids: list[int]) -> None:
    session = make_session(settings, detachable=True)
    events: list[SessionEvent] = []

    async def read() -> None:
        async with contextlib.aclosing(session.events()) as stream:
            async for event in stream:
                events.append(event)
                if isinstance(event, Spawned):
                    pids.append(event.pid)
                if isinstance(event, Ready):
                    assert session.detach()

    await asyncio.wait_for(read(), 20)
    ended = events[-1]
    assert isinstance(ended, SessionEnded) and ended.status == LEFT_RUNNING
    assert session_pids(pids[0]), "the server should still run"
    (run,) = RunArchive(settings.runs_dir).all()
    assert run.status == LEFT_RUNNING and run.alive_pids()
    assert json.loads((run.dir / "run.json").read_text())["pid"] == pids[0]


async def test_a_log_that_cannot_be_written_fails_and_stops_the_server(
    settings: Settings, pids: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: RunRecorder, lines: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RunRecorder, "write_lines", full)
    session = make_session(settings)
    events = await run_session(session, pids)
    ended = events[-1]
    assert isinstance(ended, SessionEnded) and ended.status == "failed"
    assert ended.reason.startswith("cannot write the run record in")
    assert "No space left on device" in ended.reason
    assert pids and session_pids(pids[0]) == []
    (run,) = RunArchive(settings.runs_dir).all()
    assert run.status == "failed" and run.reason == ended.reason


async def test_a_stop_from_outside_is_a_stop_for_the_owner_too(
    settings: Settings, pids: list[int]
) -> None:
    """`vllm-console stop NAME` (or another console) stopping a server this session owns: the
    owner records a stop, not "vLLM exited with code 0", and both agree in the archive."""
    from vllm_console.core.serve import attach

    session = make_session(settings)
    stops: list[asyncio.Task[object]] = []
    events: list[SessionEvent] = []

    async def read() -> None:
        async with contextlib.aclosing(session.events()) as stream:
            async for event in stream:
                events.append(event)
                if isinstance(event, Spawned):
                    pids.append(event.pid)
                if isinstance(event, Ready):
                    run = session.run
                    assert run is not None
                    stops.append(asyncio.create_task(attach.stop(settings, run.id)))

    await asyncio.wait_for(read(), 20.0)
    report = await stops[0]
    ended = events[-1]
    assert isinstance(ended, SessionEnded)
    assert ended.stopped, ended.reason
    assert ended.reason == attach.STOPPED_FROM_OUTSIDE
    assert getattr(report, "clean", False)
    run = session.run
    assert run is not None
    recorded = RunArchive(settings.runs_dir).get(run.id)
    assert recorded is not None and recorded.status == "stopped"


async def test_an_exit_on_its_own_is_still_a_failure(settings: Settings, pids: list[int]) -> None:
    """Without a stop asked from anywhere, an exit (even code 0) is a failure."""
    session = make_session(settings, "oom")
    events = await run_session(session, pids)
    ended = events[-1]
    assert isinstance(ended, SessionEnded) and not ended.stopped
    assert session.run is not None and session.run.stop_asked() is None
