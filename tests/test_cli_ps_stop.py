"""`ps` and `stop` in real processes, on two stand-in servers started by `serve`: the list,
stopping one without touching the other, an unknown name, and `stop --all`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.net import free_port
from vllm_console.core.serve.proctable import session_pids
from vllm_console.core.serve.runs import RunArchive

FAKE = Path(__file__).resolve().parent / "fakes" / "fake_vllm.py"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    for name in ("Org--Tiny", "Org--Other"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "config.json").write_text("{}")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_"))}
    return {
        **base,
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "VLLM_CONSOLE_VLLM": f"{sys.executable} {FAKE}",
        "FAKE_VLLM_DELAY": "0.2",
    }


def console(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vllm_console", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def two_servers(env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, int]]:
    """`serve` of Org/Tiny and of Org/Other, both READY: their ports by name."""
    ports = {"Org/Tiny": free_port(), "Org/Other": free_port()}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "vllm_console", "serve", model, "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        for model, port in ports.items()
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert any(line.startswith("READY ") for line in proc.stdout)
        yield ports
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def listed(env: dict[str, str], cwd: Path) -> dict[str, dict[str, object]]:
    done = console(env, cwd, "ps", "--json")
    assert done.returncode == 0, done.stderr
    return {entry["name"]: entry for entry in json.loads(done.stdout)}


def test_ps_lists_both_and_stop_touches_only_one(
    env: dict[str, str], tmp_path: Path, two_servers: dict[str, int]
) -> None:
    entries = listed(env, tmp_path)
    assert sorted(entries) == ["Org/Other", "Org/Tiny"]
    tiny, other = entries["Org/Tiny"], entries["Org/Other"]
    assert tiny["status"] == "ready" and tiny["origin"] == "serve"
    assert tiny["port"] == two_servers["Org/Tiny"]
    assert tiny["url"] == f"http://127.0.0.1:{two_servers['Org/Tiny']}/v1"
    assert isinstance(tiny["pid"], int) and isinstance(other["pid"], int)
    table = console(env, tmp_path, "ps").stdout.splitlines()
    assert table[0].split() == [
        "NAME",
        "MODEL",
        "PID",
        "PORT",
        "GPUS",
        "STATUS",
        "UPTIME",
        "ORIGIN",
    ]
    assert len(table) == 3 and all("ready" in row and "serve" in row for row in table[1:])

    other_pids = sorted(session_pids(other["pid"]))
    assert len(other_pids) == 3  # the API server, its engine and its worker
    done = console(env, tmp_path, "stop", "Org/Tiny")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"stopped Org/Tiny (run {tiny['run_id']}) in ")
    assert session_pids(tiny["pid"]) == []
    assert sorted(session_pids(other["pid"])) == other_pids  # not one of them touched
    health = httpx.get(f"http://127.0.0.1:{two_servers['Org/Other']}/health", timeout=5)
    assert health.status_code == 200
    assert sorted(listed(env, tmp_path)) == ["Org/Other"]


def test_stop_by_run_id_all_and_unknown(
    env: dict[str, str], tmp_path: Path, two_servers: dict[str, int]
) -> None:
    unknown = console(env, tmp_path, "stop", "nobody")
    assert unknown.returncode == 1
    assert "no server 'nobody' is running; running: Org/Other, Org/Tiny" in unknown.stderr
    assert console(env, tmp_path, "stop").returncode == 2
    assert console(env, tmp_path, "stop", "Org/Tiny", "--all").returncode == 2
    other = listed(env, tmp_path)["Org/Other"]
    by_id = console(env, tmp_path, "stop", str(other["run_id"]))
    assert by_id.returncode == 0 and by_id.stdout.startswith("stopped Org/Other")
    every = console(env, tmp_path, "stop", "--all")
    assert every.returncode == 0 and every.stdout.startswith("stopped Org/Tiny")
    assert listed(env, tmp_path) == {}
    assert console(env, tmp_path, "ps").stdout.startswith("No servers running")
    assert console(env, tmp_path, "stop", "--all").stderr == "No servers running.\n"


def test_names_from_the_archive_reach_the_terminal_escaped(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A run record is a file anyone with the account may write: its name is shown, not obeyed."""
    hostile = "\x1b]0;pwned\x07[bold]x[/]"
    runs = tmp_path / "state" / "vllm-console" / "runs"
    idle = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a live session leader
    try:
        recorder = RunArchive(runs).new("org/\x1b[2Jm", ["vllm"], {}, free_port(), name=hostile)
        recorder.update(pid=idle.pid, origin="up \x1b[31mred")
        table = console(env, tmp_path, "ps")
        assert "\x1b" not in table.stdout and "\x07" not in table.stdout
        assert "\\x1b]0;pwned\\x07[bold]x[/]" in table.stdout and "starting" in table.stdout
        (entry,) = json.loads(console(env, tmp_path, "ps", "--json").stdout)
        assert entry["name"] == hostile and entry["origin"] == "up \x1b[31mred"
        stopped = console(env, tmp_path, "stop", hostile)
        assert stopped.returncode == 0 and "\x1b" not in stopped.stdout
        assert idle.wait(10) == -signal.SIGTERM
    finally:
        idle.kill()
