"""`vllm-console download` against a fake hub on 127.0.0.1: exit codes, stdout, stderr, resume."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.fake_hub import FakeHub, FakeRepo
from vllm_console.cli import main
from vllm_console.commands.download import ProgressPrinter
from vllm_console.core.hub.download import DownloadProgress

WEIGHTS = os.urandom(2_000_000)
FILES = {"config.json": b'{"model_type": "llama"}', "model.safetensors": WEIGHTS}
CLI = Path(sys.executable).parent / "vllm-console"


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME and cwd, and none of the settings' variables from the real environment."""
    for name in list(os.environ):
        if name.startswith(("VLLM_", "HF_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub([FakeRepo.single("Org/Name", FILES)]) as fake:
        yield fake


def files_in(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(folder).parts
    }


def test_download_into_models_folder(
    clean_env: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--hf-endpoint", hub.url, "download", "Org/Name"]) == 0
    out, err = capsys.readouterr()
    target = clean_env / "models" / "Org--Name"
    assert out == f"{target}\n"
    assert files_in(target) == FILES
    assert f"Downloading Org/Name from {hub.url} into {target}" in err
    assert "100%  2/2 files" in err
    assert len(err.splitlines()) <= 15, "progress spams the log"


def test_download_into_cache_and_output(
    clean_env: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = clean_env / "cache"
    args = ["--hf-endpoint", hub.url, "--hf-cache", str(cache), "download", "Org/Name"]
    assert main([*args, "--to-cache"]) == 0
    snapshot = Path(capsys.readouterr().out.strip())
    assert snapshot.parent == cache / "models--Org--Name" / "snapshots"
    assert files_in(snapshot) == FILES

    assert main([*args, "--output", "elsewhere", "--revision", "main"]) == 0
    assert capsys.readouterr().out.strip() == str(clean_env / "elsewhere")
    assert files_in(clean_env / "elsewhere") == FILES


def test_unreachable_endpoint_is_one_line_exit_1(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    started = time.monotonic()
    assert main(["--hf-endpoint", url, "download", "Org/Name"]) == 1
    assert time.monotonic() - started < 10
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[-1] == (
        f"vllm-console: cannot reach {url} (connection refused): check HF_ENDPOINT or your network"
    )
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["download", "gpt2"], "'gpt2' is not a hub id of the form Org/Name"),
        (["download", "Org/Name", "--to-cache", "--output", "x"], "exclude each other"),
    ],
)
def test_bad_arguments_exit_2(
    clean_env: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err


def progress(done: int, files: int = 0, current: str | None = "w.bin") -> DownloadProgress:
    return DownloadProgress("Org/Name", done, 1000, files, 2, current)


def test_printer_rewrites_one_line_on_a_terminal() -> None:
    stream = io.StringIO()
    printer = ProgressPrinter(stream, tty=True)
    for done in range(0, 1001, 100):
        printer(progress(done))
    printer.finish()
    text = stream.getvalue()
    assert text.count("\r") == 11 and text.count("\n") == 1
    assert "100%  0/2 files, 1000 B of 1000 B" in text


def test_printer_writes_few_lines_to_a_log() -> None:
    stream = io.StringIO()
    printer = ProgressPrinter(stream, tty=False)
    for done in range(0, 1001, 5):
        printer(progress(done))
    printer(progress(1000, 2, None))
    lines = stream.getvalue().splitlines()
    assert 10 <= len(lines) <= 13
    assert lines[-1] == "100%  2/2 files, 1000 B of 1000 B"


def run_cli(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def child_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_"))}
    env["HOME"] = str(tmp_path)
    return env


def test_the_installed_command_reads_hf_endpoint_from_env_file_and_environment(
    tmp_path: Path, hub: FakeHub, child_env: dict[str, str]
) -> None:
    (tmp_path / ".env").write_text(f"HF_ENDPOINT={hub.url}\n")
    done = run_cli(tmp_path, "download", "Org/Name", env=child_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{tmp_path / 'models' / 'Org--Name'}\n"
    assert files_in(tmp_path / "models" / "Org--Name") == FILES

    (tmp_path / ".env").unlink()
    env = {**child_env, "HF_ENDPOINT": hub.url}
    done = run_cli(tmp_path, "download", "Org/Name", "--output", "again", env=env)
    assert done.returncode == 0, done.stderr
    assert files_in(tmp_path / "again") == FILES


def test_ctrl_c_keeps_the_partial_file_and_the_next_run_resumes(
    tmp_path: Path, hub: FakeHub, child_env: dict[str, str]
) -> None:
    hub.throttle(500_000)  # ~4 s for the weights
    env = {**child_env, "HF_ENDPOINT": hub.url}
    child = subprocess.Popen(
        [str(CLI), "download", "Org/Name"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    download = tmp_path / "models" / "Org--Name" / ".cache" / "huggingface" / "download"
    deadline = time.monotonic() + 20
    while not any(p.stat().st_size > 200_000 for p in download.glob("*.incomplete")):
        assert time.monotonic() < deadline and child.poll() is None, "no partial file appeared"
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=20)
    assert child.returncode == 130, err
    assert "run the same command again to resume" in err and "Traceback" not in err
    [partial] = download.glob("*.incomplete")
    kept = partial.stat().st_size
    assert 200_000 < kept < len(WEIGHTS)

    hub.throttle(None)
    done = run_cli(tmp_path, "download", "Org/Name", env=env)
    assert done.returncode == 0, done.stderr
    assert hub.ranges()[-1] == f"bytes={kept}-"
    assert files_in(tmp_path / "models" / "Org--Name") == FILES
