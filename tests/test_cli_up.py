"""`vllm-console up FILE` in a real process, with the stand-in vLLM: READY lines, prefixed logs,
`ps` while it runs, Ctrl-C, one failure among running servers, a bad file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fakes.net import free_port
from vllm_console.core.serve.proctable import session_pids

FAKE = Path(__file__).resolve().parent / "fakes" / "fake_vllm.py"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "models" / "Org--Tiny").mkdir(parents=True)
    (tmp_path / "models" / "Org--Tiny" / "config.json").write_text("{}")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_"))}
    return {
        **base,
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "VLLM_CONSOLE_VLLM": f"{sys.executable} {FAKE}",
        "FAKE_VLLM_DELAY": "0.2",
    }


def fleet_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return path


class Up:
    """`up FILE` in its own session; stdout read line by line in a thread."""

    def __init__(self, env: dict[str, str], cwd: Path, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vllm_console", "up", str(path)],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.err = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, count: int, prefix: str = "READY ", limit: float = 30) -> list[str]:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and self.proc.poll() is None:
            found = [line for line in self.lines if line.startswith(prefix)]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {count} {prefix!r} lines:\n" + "\n".join(self.lines[-30:]))

    def finish(self, sig: signal.Signals | None = None, limit: float = 30) -> int:
        if sig is not None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(limit)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.err = self.proc.stderr.read() if self.proc.stderr else ""
        return code


def test_ready_lines_prefixed_logs_ps_and_ctrl_c(env: dict[str, str], tmp_path: Path) -> None:
    chat, embed, far = free_port(), free_port(), free_port()
    path = fleet_file(
        tmp_path,
        f"""servers:
  chat:
    model: Org/Tiny
    port: {chat}
    gpus: [0]
  embed-model:
    model: Org/Tiny
    port: {embed}
    served-model-name: embedder
    gpus: [1]
  far:
    url: http://127.0.0.1:{far}
""",
    )
    up = Up(env, tmp_path, path)
    try:
        ready = up.wait_for(2)
        assert sorted(ready) == [
            f"READY chat http://127.0.0.1:{chat}/v1 Org/Tiny",
            f"READY embed-model http://127.0.0.1:{embed}/v1 embedder",
        ]
        assert up.wait_for(1, "REMOTE ") == [f"REMOTE far http://127.0.0.1:{far} down"]
        assert any(line.startswith("chat        | (APIServer pid=") for line in up.lines)
        assert any(line.startswith("embed-model | (APIServer pid=") for line in up.lines)
        ps = subprocess.run(
            [sys.executable, "-m", "vllm_console", "ps", "--json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        listed = {entry["name"]: entry for entry in json.loads(ps.stdout)}
        assert sorted(listed) == ["chat", "embed-model"]
        assert listed["chat"]["origin"] == f"up {path}" and listed["chat"]["gpus"] == [0]
        sessions = [int(entry["pid"]) for entry in listed.values()]
    finally:
        code = up.finish(signal.SIGINT)
    assert code == 0, up.err
    assert "stopping 2 server(s) ..." in up.err and "all 2 server(s) stopped" in up.err
    assert [session_pids(sid) for sid in sessions] == [[], []]


def test_a_failure_is_diagnosed_while_the_other_runs(env: dict[str, str], tmp_path: Path) -> None:
    good, bad = free_port(), free_port()
    path = fleet_file(
        tmp_path,
        f"""servers:
  good:
    model: Org/Tiny
    port: {good}
  bad:
    model: Org/Tiny
    port: {bad}
    env:
      FAKE_VLLM_SCENARIO: max_model_len
""",
    )
    up = Up(env, tmp_path, path)
    try:
        assert up.wait_for(1) == [f"READY good http://127.0.0.1:{good}/v1 Org/Tiny"]
        deadline = time.monotonic() + 20
        while not any("[core.py:866] ValueError" in line for line in up.lines):
            assert time.monotonic() < deadline, "\n".join(up.lines[-20:])
            time.sleep(0.05)
        time.sleep(0.5)
        assert up.proc.poll() is None  # the good one keeps it running
    finally:
        code = up.finish(signal.SIGTERM)
    assert code == 1
    assert "bad  | DIAGNOSIS: The KV cache cannot hold" in up.err
    assert "bad  |   fix: Relaunch with --max-model-len 11568" in up.err
    assert "bad  | vllm-console: bad failed: vLLM exited with code 1" in up.err
    assert "good | stopped in " in up.err
    assert up.err.rstrip().endswith("vllm-console: 1 of 2 failed: bad")


def test_up_ends_by_itself_when_every_server_failed(env: dict[str, str], tmp_path: Path) -> None:
    path = fleet_file(
        tmp_path,
        f"""servers:
  oom:
    model: Org/Tiny
    port: {free_port()}
    env: {{FAKE_VLLM_SCENARIO: oom}}
""",
    )
    up = Up(env, tmp_path, path)
    assert up.finish() == 1
    assert "oom | DIAGNOSIS: " in up.err and "READY" not in "\n".join(up.lines)


def test_a_bad_file_starts_nothing(env: dict[str, str], tmp_path: Path) -> None:
    path = fleet_file(tmp_path, "servers:\n  chat:\n    model: Org/Tiny\n    modle: typo\n")
    up = Up(env, tmp_path, path)
    assert up.finish() == 2
    assert f"vllm-console: {path} line 4: " in up.err
    assert up.err.rstrip().endswith("vllm-console: nothing started")
    assert not (tmp_path / "state" / "vllm-console" / "runs").exists()


def test_a_model_not_found_starts_nothing(env: dict[str, str], tmp_path: Path) -> None:
    path = fleet_file(
        tmp_path,
        f"servers:\n  chat:\n    model: Org/Tiny\n    port: {free_port()}\n"
        f"  lost:\n    model: no-such-model\n    port: {free_port()}\n",
    )
    up = Up(env, tmp_path, path)
    assert up.finish() == 2
    assert "lost: model no-such-model not found" in up.err
    assert not (tmp_path / "state" / "vllm-console" / "runs").exists()
