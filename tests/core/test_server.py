"""ServerProcess and Supervisor against the stand-in vLLM: phases, ready, stop, diagnosis."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fakes.net import free_port

from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.serve.process import ServerProcess, health_url
from vllm_console.core.serve.proctable import port_is_free, session_pids
from vllm_console.core.serve.spec import LaunchSpec, serve_args
from vllm_console.core.serve.supervisor import (
    Event,
    Exited,
    LogLine,
    PhaseChanged,
    Ready,
    Stalled,
    Supervisor,
)

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_vllm.py"


def make_server(scenario: str, port: int, delay: float = 0.3, **spec: object) -> ServerProcess:
    args = serve_args(LaunchSpec("/m/tiny", port=port, **spec))  # type: ignore[arg-type]
    argv = [sys.executable, str(FAKE), "serve", *args]
    return ServerProcess(argv, {"FAKE_VLLM_SCENARIO": scenario, "FAKE_VLLM_DELAY": str(delay)})


async def collect(sup: Supervisor, until: type, limit: float = 20.0) -> list[Event]:
    events: list[Event] = []

    async def run() -> None:
        async for event in sup.events():
            events.append(event)
            if isinstance(event, until):
                return

    await asyncio.wait_for(run(), limit)
    return events


@pytest.fixture
def cleanup() -> Iterator[list[ServerProcess]]:
    servers: list[ServerProcess] = []
    yield servers
    for server in servers:
        if server.pid and session_pids(server.pid):
            os.killpg(server.pid, signal.SIGKILL)


async def test_ready_then_clean_stop(cleanup: list[ServerProcess]) -> None:
    port = free_port()
    server = make_server("ok", port)
    cleanup.append(server)
    await server.start()
    sup = Supervisor(server, health_url("127.0.0.1", port))
    events = await collect(sup, Ready)
    phases = [e.phase for e in events if isinstance(e, PhaseChanged)]
    assert phases == [
        Phase.LOADING_WEIGHTS,
        Phase.COMPILING,
        Phase.ALLOCATING_KV,
        Phase.WARMING_UP,
        Phase.STARTING_SERVER,
        Phase.READY,
    ]
    assert any(
        isinstance(e, LogLine) and any("Starting vLLM server" in t for t in e.lines) for e in events
    )
    names = {Path(f"/proc/{p}/comm").read_text().strip() for p in session_pids(server.pid or 0)}
    assert {"VLLM::EngineCor", "VLLM::Worker"} <= names
    sup.mark_stopping()
    report = await server.stop(grace=10)
    assert report.clean and not report.killed and report.seconds < 5
    assert port_is_free("127.0.0.1", port)


async def test_ignoring_sigterm_gets_killed_after_grace(cleanup: list[ServerProcess]) -> None:
    port = free_port()
    server = make_server("ignore_term", port)
    cleanup.append(server)
    await server.start()
    await collect(Supervisor(server, health_url("127.0.0.1", port)), Ready)
    report = await server.stop(grace=1.0)
    assert report.killed and report.clean
    assert 1.0 <= report.seconds < 8


async def test_orphaned_engine_is_still_stopped(cleanup: list[ServerProcess]) -> None:
    """SIGKILL of the API server leaves vLLM's engine alive; stop must still clear it."""
    port = free_port()
    server = make_server("ok", port)
    cleanup.append(server)
    await server.start()
    await collect(Supervisor(server, health_url("127.0.0.1", port)), Ready)
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    await asyncio.sleep(0.3)
    assert server.survivors(), "the stand-in should leave its engine behind"
    report = await server.stop(grace=1.0)
    assert report.clean


@pytest.mark.parametrize(
    ("scenario", "rule", "fix"),
    [
        ("oom", "oom", None),
        ("max_model_len", "max-model-len", ("max_model_len", 11568)),
        ("no_kv", "no-kv-blocks", None),
        ("inductor", "inductor", None),
        ("free_memory", "free-memory", "gpu_memory_utilization"),
    ],
)
async def test_failures_are_diagnosed(
    cleanup: list[ServerProcess], scenario: str, rule: str, fix: object
) -> None:
    port = free_port()
    server = make_server(scenario, port, delay=0.1)
    cleanup.append(server)
    await server.start()
    sup = Supervisor(server, health_url("127.0.0.1", port))
    events = await collect(sup, Exited)
    exited = events[-1]
    assert isinstance(exited, Exited) and exited.returncode == 1 and not exited.was_ready
    assert rule in [f.rule for f in exited.findings]
    finding = next(f for f in exited.findings if f.rule == rule)
    if isinstance(fix, tuple):
        assert finding.fix is not None and (finding.fix.field, finding.fix.value) == fix
    elif isinstance(fix, str):
        assert finding.fix is not None and finding.fix.field == fix
    assert sup.phase is Phase.FAILED
    assert (await server.stop(grace=2)).clean


async def test_hub_stall_is_diagnosed(cleanup: list[ServerProcess]) -> None:
    port = free_port()
    server = make_server("hub", port, delay=0.2)
    cleanup.append(server)
    await server.start()
    sup = Supervisor(server, health_url("127.0.0.1", port), stall_timeout=1.5)
    events = await collect(sup, Stalled)
    stalled = events[-1]
    assert isinstance(stalled, Stalled) and stalled.finding.rule == "hub-stalled"
    assert "HF_ENDPOINT" in stalled.finding.hint
    assert (await server.stop(grace=2)).clean


@pytest.mark.parametrize("given", [None, "the-launch-key"])
async def test_the_api_key_is_the_launchs_never_the_inherited_one(
    given: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key in the console's own environment must not reach a launch that has none (the
    user cleared it in .env or with a flag): vLLM would refuse every unauthenticated client."""
    monkeypatch.setenv("VLLM_API_KEY", "inherited-key")
    show = "import os; print('KEY', os.environ.get('VLLM_API_KEY'))"
    env = {"VLLM_API_KEY": given} if given else {}
    server = ServerProcess([sys.executable, "-c", show], env)
    async with server:
        lines = [line async for line in server.lines()]
    assert f"KEY {given}" in lines
