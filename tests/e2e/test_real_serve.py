"""The headless `serve` against a real vLLM (CPU build) on a tiny model: ready, chat, stop.

Also: a console killed with SIGKILL must not leave vLLM's renamed engine behind.
"""

from __future__ import annotations

import collections
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
from tests.fakes.net import free_port
from vllm_console.core.serve.proctable import port_holders, port_is_free, session_pids

pytestmark = pytest.mark.e2e
READY_LIMIT = 180.0


def start_serve(
    env: dict[str, str], port: int, cwd: Path, max_model_len: int = 512, *, eager: bool = True
) -> subprocess.Popen[str]:
    argv = [
        sys.executable,
        "-m",
        "vllm_console",
        "serve",
        TINY_ID,
        "--port",
        str(port),
        "--max-model-len",
        str(max_model_len),
        *(["--enforce-eager"] if eager else []),
        "--",
        "--dtype",
        "bfloat16",
    ]
    return subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_ready(proc: subprocess.Popen[str], port: int) -> list[str]:
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + READY_LIMIT
    for line in proc.stdout:
        seen.append(line.rstrip("\n"))
        if line.startswith("READY "):
            return seen
        assert time.monotonic() < deadline, "not ready in time:\n" + "\n".join(seen[-40:])
    err = proc.stderr.read() if proc.stderr else ""
    raise AssertionError("serve ended before READY:\n" + "\n".join(seen[-40:]) + err)


def drain(proc: subprocess.Popen[str]) -> collections.deque[str]:
    """Read the rest of `serve`'s output in the background, keeping its last lines: a test that
    loads the server for minutes and reads nothing would fill the pipe, and `serve`, blocked
    writing vLLM's log, would not get to its stop."""
    kept: collections.deque[str] = collections.deque(maxlen=200)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            threading.Thread(target=kept.extend, args=(pipe,), daemon=True).start()
    return kept


def server_session(port: int) -> int:
    holders = port_holders(port)
    assert holders, "nothing listens on the port after READY"
    return holders[0].session


def wait_gone(sid: int, limit: float) -> list[int]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        left = session_pids(sid)
        if not left:
            return []
        time.sleep(0.2)
    return session_pids(sid)


def test_serve_ready_chat_and_clean_stop(real_env: dict[str, str], tmp_path: Path) -> None:
    port, cwd = free_port(), Path(real_env["HOME"]).parent / "cwd"
    # Not eager: the CPU build compiles as it warms up, and the phases must say so.
    proc = start_serve(real_env, port, cwd, eager=False)
    try:
        seen = wait_ready(proc, port)
        assert seen[-1] == f"READY http://127.0.0.1:{port}/v1 {TINY_ID}"
        assert any("Starting vLLM server" in line for line in seen)
        sid = server_session(port)
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
        chat_env = {**real_env, "VLLM_BASE_URL": f"http://127.0.0.1:{port}/v1"}
        chat = subprocess.run(
            [sys.executable, "-m", "vllm_console", "chat", "hello", "--max-tokens", "8", "--json"],
            env=chat_env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert chat.returncode == 0, chat.stderr
        answer = json.loads(chat.stdout.strip().splitlines()[-1])
        assert answer["model"] == TINY_ID and answer["tokens"] > 0
        assert answer["ttft_s"] is not None and answer["finish_reason"] == "length"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert wait_gone(sid, 5) == []
    assert port_is_free("127.0.0.1", port)
    runs = subprocess.run(
        [sys.executable, "-m", "vllm_console", "runs", "--json"],
        env=real_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    (run,) = json.loads(runs.stdout)
    assert run["status"] == "stopped" and run["reason"] == "stopped by the user"
    assert [p for p, _ in run["phases"]] == [
        "starting",
        "loading weights",
        "compiling",
        "allocating KV cache",
        "starting API server",
        "ready",
        "stopping",
    ]
    compiling = dict(run["phases"])["compiling"]
    assert compiling > dict(run["phases"])["loading weights"]  # where the start's time goes
    assert "Starting vLLM server" in Path(run["log"]).read_text()


def test_sigkill_of_the_console_takes_the_server_down(real_env: dict[str, str]) -> None:
    port, cwd = free_port(), Path(real_env["HOME"]).parent / "cwd"
    proc = start_serve(real_env, port, cwd)
    try:
        wait_ready(proc, port)
        sid = server_session(port)
        assert sid != proc.pid
        engine = [
            p for p in session_pids(sid) if Path(f"/proc/{p}/comm").read_text().startswith("VLLM::")
        ]
        assert engine, "vLLM's renamed engine process not found"
        proc.kill()
        proc.wait(timeout=10)
        left = wait_gone(sid, 20)
    finally:
        if proc.poll() is None:
            proc.kill()
    if left:
        os.killpg(sid, signal.SIGKILL)
    assert left == [], f"left alive 20 s after the console's SIGKILL: {left}"
    assert port_is_free("127.0.0.1", port)
