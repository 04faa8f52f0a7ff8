"""A real vLLM (CPU build) launched with an API key: the key reaches vLLM and nothing else.

One headless `serve` of the tiny model with VLLM_API_KEY set: the server requires the key
(401 without it, 200 with it), and the key appears in no command line of the server's
processes, nowhere in what `serve` printed, in no file of the state or config folders (the
run's record and log, saved specs), and not in `runs --json`.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import TINY_ID
from tests.e2e.test_real_serve import server_session, start_serve, wait_gone, wait_ready
from tests.fakes.net import free_port
from vllm_console.core.serve.proctable import session_pids
from vllm_console.core.serve.spec import LaunchSpec, save_spec

pytestmark = pytest.mark.e2e
KEY = "sk-e2e-0c6f1d2b9a"


def files_under(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*") if p.is_file()]


def test_the_api_key_reaches_vllm_and_nothing_else(real_env: dict[str, str]) -> None:
    env = {**real_env, "VLLM_API_KEY": KEY}
    port, cwd = free_port(), Path(real_env["HOME"]).parent / "cwd"
    proc = start_serve(env, port, cwd)
    try:
        printed = wait_ready(proc, port)
        sid = server_session(port)
        pids = session_pids(sid)
        assert pids
        for pid in pids:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert KEY.encode() not in cmdline and b"--api-key" not in cmdline, cmdline
        environ = Path(f"/proc/{sid}/environ").read_bytes().split(b"\0")
        assert f"VLLM_API_KEY={KEY}".encode() in environ
        url = f"http://127.0.0.1:{port}/v1/models"
        assert httpx.get(url, timeout=30).status_code == 401
        auth = {"Authorization": f"Bearer {KEY}"}
        assert httpx.get(url, headers=auth, timeout=30).status_code == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert wait_gone(sid, 5) == []
    shown = "\n".join(printed) + out + err
    assert "Starting vLLM server" in shown and "VLLM_API_KEY=***" in err
    assert KEY not in shown
    runs = subprocess.run(
        [sys.executable, "-m", "vllm_console", "runs", "--json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    assert KEY not in runs.stdout
    (run,) = json.loads(runs.stdout)
    assert run["env"]["VLLM_API_KEY"] == "***"
    state = Path(env["XDG_STATE_HOME"]) / "vllm-console"
    config = Path(env["XDG_CONFIG_HOME"]) / "vllm-console"
    save_spec(config / "launch-specs.json", TINY_ID, LaunchSpec(model=TINY_ID, api_key=KEY))
    files = files_under(state, config)
    assert {p.name for p in files} >= {"run.json", "log.txt", "launch-specs.json"}
    for file in files:
        assert KEY.encode() not in file.read_bytes(), file
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    for folder in (state, state / "runs", Path(run["log"]).parent, config):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
