"""The headless `serve` in a real process, with the stand-in vLLM: READY, Ctrl-C, failures."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.net import free_port

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


def serve(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vllm_console", "serve", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_ready_line_and_ctrl_c(env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    proc = serve(
        env,
        tmp_path,
        "--model",
        "Org/Tiny",
        "--port",
        str(port),
        "--enforce-eager",
        "--",
        "--seed",
        "1",
    )
    try:
        assert proc.stdout is not None
        ready = next(line for line in proc.stdout if line.startswith("READY"))
        assert ready.strip() == f"READY http://127.0.0.1:{port}/v1 Org/Tiny"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = proc.stderr.read() if proc.stderr else ""
    assert "resolved Org/Tiny -> " in err and "model-dir" in err
    assert "--enforce-eager" in err and "--seed 1" in err
    assert "[phase] ready" in err and "[phase] stopped" in err


def test_failure_exits_nonzero_with_diagnosis(env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "FAKE_VLLM_SCENARIO": "max_model_len"}
    proc = serve(env, tmp_path, "Org/Tiny", "--port", str(free_port()))
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "DIAGNOSIS: The KV cache cannot hold" in err
    assert "--max-model-len 11568" in err


def test_a_run_folder_that_cannot_be_made_is_a_failure(env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "state-file"
    blocker.write_text("a file where the state folder should be")
    env = {**env, "XDG_STATE_HOME": str(blocker)}
    proc = serve(env, tmp_path, "Org/Tiny", "--port", str(free_port()))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "READY" not in out
    assert f"vllm-console: cannot record the run under {blocker}" in err


def test_taken_port_is_refused_naming_the_holder(env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        start = time.monotonic()
        proc = serve(env, tmp_path, "Org/Tiny", "--port", str(port))
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and time.monotonic() - start < 20
    assert f"port {port} is taken by" in err and f"(pid {os.getpid()})" in err


def test_unknown_model_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    proc = serve(env, tmp_path, "no such model")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "not-found" in err


def test_gpu_memory_after_the_stop_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    from vllm_console.commands.serve import report_gpu
    from vllm_console.core.gpu.owners import Holder

    assert report_gpu(None) == 0 and capsys.readouterr().err == ""  # no GPU: nothing said
    assert report_gpu([]) == 0 and capsys.readouterr().err == "GPU memory released\n"
    held = [Holder(0, 4242, 3 << 30, "VLLM::Worker"), Holder(1, None, 1 << 30)]
    assert report_gpu(held) == 1
    err = capsys.readouterr().err
    assert "still held after the stop" in err
    assert "VLLM::Worker (pid 4242) holds 3.0 GiB on GPU 0" in err
    assert "1.0 GiB on GPU 1 not returned since launch" in err
    assert err.rstrip().endswith("to free it: kill -9 4242")


def _gguf(folder: Path, *names: str) -> None:
    from tests.fakes.cachegen import gguf_bytes, llama_gguf_metadata, llama_gguf_tensors

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(gguf_bytes(llama_gguf_metadata(), llama_gguf_tensors()))


def test_a_gguf_file_gets_the_original_models_tokenizer(
    env: dict[str, str], tmp_path: Path
) -> None:
    original = tmp_path / "models" / "Org--Tiny"
    (original / "tokenizer.json").write_text("{}")
    _gguf(tmp_path / "models" / "Org--Tiny-GGUF", "t-Q4_K_M.gguf", "t-Q8_0.gguf")
    port = free_port()
    proc = serve(env, tmp_path, "Org/Tiny-GGUF:Q8_0", "--port", str(port))
    try:
        assert proc.stdout is not None
        assert next(line for line in proc.stdout if line.startswith("READY"))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = proc.stderr.read() if proc.stderr else ""
    launched = next(line for line in err.splitlines() if line.startswith("$ "))
    assert "Org--Tiny-GGUF/t-Q8_0.gguf" in launched
    assert f"--tokenizer {original}" in launched
    assert f"tokenizer: {original} (the original model's" in err
    assert "note: GGUF: vLLM loads a single file only" in err


def test_a_gguf_launch_keeps_the_users_tokenizer_and_refuses_a_split_set(
    env: dict[str, str], tmp_path: Path
) -> None:
    _gguf(tmp_path / "models" / "lone", "t-Q4_K_M.gguf", "t-Q8_0.gguf")
    for own in ([], ["--", "--tokenizer", "org/mine"]):
        with socket.socket() as sock:  # a taken port: it stops after the tokenizer is chosen
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            port = str(sock.getsockname()[1])
            proc = serve(env, tmp_path, "lone:Q8_0", "--port", port, *own)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 2 and "is taken by" in err
        assert ("no tokenizer found for this GGUF file" in err) is (not own), err
    shards = ("big-Q8_0-00001-of-00002.gguf", "big-Q8_0-00002-of-00002.gguf")
    _gguf(tmp_path / "models" / "big", *shards)
    proc = serve(env, tmp_path, str(tmp_path / "models" / "big" / shards[0]))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "vLLM loads single-file GGUF only" in err
    assert "llama-gguf-split --merge" in err
