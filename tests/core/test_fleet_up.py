"""A fleet run headless against the stand-in vLLM: the plan, the order of starts by GPU,
one failure among running servers, a stop while some wait, remote probes, and the no-orphans
guarantee when `up` is killed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.net import free_port

from vllm_console.config import Settings
from vllm_console.core.fleet.model import Member, Source
from vllm_console.core.fleet.up import (
    Fleet,
    FleetEvent,
    Launch,
    NotStarted,
    Waiting,
    api_url,
    overlaps,
    plan,
    probe_remote,
)
from vllm_console.core.serve.process import health_url, is_healthy
from vllm_console.core.serve.proctable import session_pids
from vllm_console.core.serve.runs import RunArchive
from vllm_console.core.serve.session import SessionEnded, Spawned
from vllm_console.core.serve.spec import LaunchSpec
from vllm_console.core.serve.supervisor import Ready

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_vllm.py"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    for name in ("Org--Tiny", "Org--Other"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "config.json").write_text("{}")
    (tmp_path / "cwd").mkdir()
    return Settings(
        home=tmp_path / "home",
        cwd=tmp_path / "cwd",
        state_dir=tmp_path / "state",
        extra_model_dirs=(tmp_path / "models",),
        vllm_command=f"{sys.executable} {FAKE}",
        stop_timeout=3.0,
    )


def member(
    name: str,
    *,
    gpus: tuple[int, ...] | None = None,
    scenario: str = "ok",
    delay: float = 0.3,
    model: str = "Org/Tiny",
) -> Member:
    env = {"FAKE_VLLM_SCENARIO": scenario, "FAKE_VLLM_DELAY": str(delay)}
    spec = LaunchSpec(model, port=free_port(), gpus=gpus, extra_env=env)
    return Member(name, spec=spec, source=Source("fleet.yaml", 3))


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """Servers the tests started: whatever is left of them is killed after."""
    started: list[int] = []
    yield started
    for pid in started:
        if session_pids(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


class Recorder:
    """Every event of a fleet, in order, with a time; stops the fleet when told to."""

    def __init__(self, fleet: Fleet, pids: list[int], stop_when_ready: int = 0) -> None:
        self.fleet, self.pids, self.stop_when_ready = fleet, pids, stop_when_ready
        self.events: list[tuple[str, FleetEvent, float]] = []
        self.ready: set[str] = set()
        self.check: list[tuple[str, bool]] = []

    def __call__(self, launch: Launch, event: FleetEvent) -> None:
        self.events.append((launch.name, event, time.monotonic()))
        if isinstance(event, Spawned):
            self.pids.append(event.pid)
        if isinstance(event, Ready):
            self.ready.add(launch.name)
            if len(self.ready) == self.stop_when_ready:
                self.fleet.stop_all()

    def of(self, name: str, kind: type) -> list[FleetEvent]:
        return [e for n, e, _ in self.events if n == name and isinstance(e, kind)]

    def when(self, name: str, kind: type) -> float:
        return next(t for n, e, t in self.events if n == name and isinstance(e, kind))

    def end(self, name: str) -> SessionEnded:
        (ended,) = self.of(name, SessionEnded)
        assert isinstance(ended, SessionEnded)
        return ended


def test_the_plan_resolves_names_and_finds_vllm_once(settings: Settings) -> None:
    chat, other = member("chat"), member("other", model="Org/Other")
    planned = plan(settings, [chat, other, Member("far", url="http://far:8000")])
    assert planned.problems == ()
    assert [launch.name for launch in planned.launches] == ["chat", "other"]
    assert [m.name for m in planned.remotes] == ["far"]
    assert planned.notes[0].startswith("vLLM ? (?) from VLLM_CONSOLE_VLLM=")
    assert "chat: resolved Org/Tiny -> " in planned.notes[1] and "model-dir" in planned.notes[1]
    launch = planned.launches[0]
    assert launch.spec.model == str(settings.extra_model_dirs[0] / "Org--Tiny")
    assert launch.spec.served_model_name == "Org/Tiny" and launch.model == "Org/Tiny"
    assert launch.argv[:3] == (sys.executable, str(FAKE), "serve")
    assert launch.url == f"http://127.0.0.1:{launch.spec.port}/v1"


def test_the_plan_names_every_problem_with_its_member(settings: Settings) -> None:
    lost, clash = member("lost", model="no such model"), member("clash")
    twin = Member("twin", spec=clash.spec, source=Source("fleet.yaml", 9))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = Member("taken", spec=LaunchSpec("Org/Tiny", port=sock.getsockname()[1]))
        planned = plan(settings, [lost, clash, twin, taken])
    assert [launch.name for launch in planned.launches] == ["clash"]
    lost_said, twin_said, taken_said = planned.problems
    assert lost_said.startswith("fleet.yaml line 3: lost: model no such model not found")
    assert twin_said.startswith("fleet.yaml line 9: twin: port ") and "clash's too" in twin_said
    assert taken_said.startswith("console: taken: port ") and f"(pid {os.getpid()})" in taken_said


def test_a_fleet_of_remotes_only_needs_no_vllm(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, vllm_command=str(tmp_path / "no-such-vllm"))
    planned = plan(settings, [Member("far", url="http://far:8000")])
    assert planned.problems == () and planned.vllm is None and planned.launches == ()
    broken = plan(settings, [member("chat")])
    assert broken.problems and "not found" in broken.problems[0]


def test_members_overlap_when_they_may_share_a_gpu() -> None:
    assert not overlaps(member("a", gpus=(0,)), member("b", gpus=(1, 2)))
    assert overlaps(member("a", gpus=(0, 1)), member("b", gpus=(1, 2)))
    assert overlaps(member("a"), member("b", gpus=(3,)))  # no gpus: any it inherits
    assert overlaps(member("a"), member("b"))


def test_the_api_url_is_reached_as_health_is() -> None:
    assert api_url("0.0.0.0", 8000) == "http://127.0.0.1:8000/v1"
    assert api_url("::1", 8001) == "http://[::1]:8001/v1"
    assert api_url("gpu-box", 80) == "http://gpu-box:80/v1"


async def test_overlapping_members_start_one_after_the_other(
    settings: Settings, pids: list[int]
) -> None:
    members = [member("a", gpus=(0,)), member("b", gpus=(1,)), member("c", gpus=(0, 2))]
    planned = plan(settings, members)
    fleet = Fleet(settings, planned.launches, origin="up fleet.yaml")
    seen = Recorder(fleet, pids, stop_when_ready=3)
    await asyncio.wait_for(fleet.run(seen), 30)
    assert seen.of("c", Waiting) == [Waiting(("a",))] and not seen.of("b", Waiting)
    # a and b start at once; c once a is ready, not before
    assert seen.when("b", Spawned) < seen.when("a", Ready)
    assert seen.when("c", Spawned) > seen.when("a", Ready)
    for name in "abc":
        assert seen.end(name).stopped, seen.end(name).reason
    runs = {run.server_name: run for run in RunArchive(settings.runs_dir).all()}
    assert sorted(runs) == ["a", "b", "c"]
    assert runs["c"].gpus == (0, 2) and runs["c"].origin == "up fleet.yaml"
    assert all(run.status == "stopped" for run in runs.values())


async def test_one_failure_leaves_the_others_running(settings: Settings, pids: list[int]) -> None:
    members = [
        member("good", gpus=(0,)),
        member("oom", gpus=(1,), scenario="oom", delay=0.1),
        member("next", gpus=(1,)),  # waits for oom, then starts all the same
    ]
    planned = plan(settings, members)
    fleet = Fleet(settings, planned.launches, origin="up fleet.yaml")
    seen = Recorder(fleet, pids)
    url = health_url("127.0.0.1", planned.launches[0].spec.port)

    async def watch() -> None:
        while "oom" not in fleet.ended or fleet.ended["oom"] is None or len(seen.ready) < 2:
            await asyncio.sleep(0.05)
        assert await is_healthy(url)  # the failure touched nothing of the others
        fleet.stop_all()

    await asyncio.wait_for(asyncio.gather(fleet.run(seen), watch()), 30)
    failed = seen.end("oom")
    assert not failed.stopped and failed.findings[0].rule == "oom"
    assert seen.when("next", Spawned) > seen.when("oom", SessionEnded)
    assert seen.end("good").stopped and seen.end("next").stopped


async def test_a_stop_while_members_wait_starts_none_of_them(
    settings: Settings, pids: list[int]
) -> None:
    members = [member("slow", delay=30), member("after"), member("last")]
    planned = plan(settings, members)
    fleet = Fleet(settings, planned.launches, origin="up fleet.yaml")
    seen = Recorder(fleet, pids)

    async def stop_soon() -> None:
        while not seen.of("slow", Spawned):
            await asyncio.sleep(0.05)
        fleet.stop_all()

    await asyncio.wait_for(asyncio.gather(fleet.run(seen), stop_soon()), 30)
    assert seen.of("last", Waiting) == [Waiting(("slow", "after"))]
    assert seen.of("after", NotStarted) and seen.of("last", NotStarted)
    assert seen.end("slow").stopped
    assert [run.name for run in RunArchive(settings.runs_dir).all()] == ["slow"]


async def test_remote_members_are_probed_once() -> None:
    with FakeOpenAI() as server:
        up = Member("up", url=f"http://127.0.0.1:{server.port}")
        with_v1 = Member("v1", url=server.base_url, api_key="k")
        assert await probe_remote(up) and await probe_remote(with_v1)
    start = time.monotonic()
    assert not await probe_remote(Member("down", url=f"http://127.0.0.1:{free_port()}"))
    assert not await probe_remote(Member("odd", url="http://[bad"), timeout=0.5)
    assert time.monotonic() - start < 3


DRIVER = """
import json, sys
from pathlib import Path
from vllm_console.commands.up import run_up
from vllm_console.config import Settings
from vllm_console.core.fleet.model import Member
from vllm_console.core.serve.spec import LaunchSpec
cfg = json.loads(sys.argv[1])
paths = {"state_dir", "home", "cwd"}
settings = Settings(**{k: Path(v) if k in paths else v for k, v in cfg["settings"].items()})
members = [Member(name, spec=LaunchSpec(**spec)) for name, spec in cfg["members"].items()]
sys.exit(run_up(settings, members, origin="up fleet.yaml"))
"""


def start_driver(
    settings: Settings, members: dict[str, int], tmp_path: Path
) -> subprocess.Popen[str]:
    """`run_up` in a process of its own, on stand-in servers of the given ports."""
    cfg = {
        "settings": {
            "state_dir": str(settings.state_dir),
            "home": str(settings.home),
            "vllm_command": settings.vllm_command,
            "stop_timeout": 3.0,
        },
        "members": {
            name: {
                "model": str(settings.extra_model_dirs[0] / "Org--Tiny"),
                "port": port,
                "extra_env": {"FAKE_VLLM_DELAY": "0.3"},
            }
            for name, port in members.items()
        },
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tui") + os.pathsep + str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, json.dumps(cfg)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_sigkill_of_up_takes_every_server_down(settings: Settings, tmp_path: Path) -> None:
    ports = {"chat": free_port(), "embed": free_port(), "third": free_port()}
    proc = start_driver(settings, ports, tmp_path)
    sessions: list[int] = []
    try:
        assert proc.stdout is not None
        ready: list[str] = []
        for line in proc.stdout:
            if line.startswith("READY "):
                ready.append(line.split()[1])
                if len(ready) == 3:
                    break
        assert sorted(ready) == ["chat", "embed", "third"], proc.stderr and proc.stderr.read()
        runs = RunArchive(settings.runs_dir).all()
        sessions = [run.pid for run in runs if run.pid]
        assert len(sessions) == 3 and all(session_pids(sid) for sid in sessions)
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 20
        while any(session_pids(sid) for sid in sessions) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = {sid: session_pids(sid) for sid in sessions if session_pids(sid)}
        assert left == {}, f"alive 20 s after up was killed: {left}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for sid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sid, signal.SIGKILL)
