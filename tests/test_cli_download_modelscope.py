"""`vllm-console download --from modelscope` (and VLLM_CONSOLE_HUB) against a fake ModelScope
site on 127.0.0.1: the real library runs; exit codes, stdout, stderr."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.fake_modelscope import FakeModelScope, MsRepo
from tests.fakes.net import free_port
from vllm_console.cli import main

FILES = {"config.json": b'{"model_type": "llama"}', "model.safetensors": os.urandom(1_500_000)}


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith(("VLLM_", "HF_", "MODELSCOPE_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def site() -> Iterator[FakeModelScope]:
    with FakeModelScope([MsRepo("Org/Name-1.5B", {"master": FILES})]) as fake:
        yield fake


def test_from_modelscope_into_models_folder(
    clean_env: Path,
    site: FakeModelScope,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", site.url)
    assert main(["download", "Org/Name-1.5B", "--from", "modelscope"]) == 0
    out, err = capsys.readouterr()
    target = clean_env / "models" / "Org--Name-1.5B"
    assert out == f"{target}\n"
    assert {p.name: p.read_bytes() for p in target.iterdir()} == FILES
    assert f"Downloading Org/Name-1.5B from {site.url} into {target}" in err
    assert "100%  2/2 files" in err
    assert "Downloading:" not in err and "INFO" not in err  # the library's bars and logs


def test_the_hub_setting_picks_modelscope_and_its_cache(
    clean_env: Path,
    site: FakeModelScope,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache = clean_env / "ms-cache"
    (clean_env / ".env").write_text(
        f"VLLM_CONSOLE_HUB=modelscope\nMODELSCOPE_DOMAIN={site.url}\nMODELSCOPE_CACHE={cache}\n"
    )
    assert main(["download", "Org/Name-1.5B", "--to-cache"]) == 0
    out, err = capsys.readouterr()
    assert Path(out.strip()) == cache / "models" / "Org--Name-1.5B" / "snapshots" / "master"
    assert f"into the ModelScope cache {cache}" in err
    # --from wins over the setting: the Hugging Face endpoint is tried, and is not there.
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["--hf-endpoint", url, "download", "Org/Name-1.5B", "--from", "huggingface"]) == 1
    assert f"cannot reach {url}" in capsys.readouterr().err


def test_unreachable_modelscope_is_one_line_exit_1(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", url)
    started = time.monotonic()
    assert main(["download", "Org/Name", "--from", "modelscope"]) == 1
    assert time.monotonic() - started < 10
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"vllm-console: cannot reach {url} (connection refused): "
        "check MODELSCOPE_ENDPOINT (or MODELSCOPE_DOMAIN) or your network"
    )


def test_a_bad_hub_setting_is_a_clear_message(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VLLM_CONSOLE_HUB", "modelscop")
    assert main(["download", "Org/Name"]) == 2
    err = capsys.readouterr().err
    assert "VLLM_CONSOLE_HUB='modelscop' (from environment)" in err
    assert "expected huggingface or modelscope" in err
