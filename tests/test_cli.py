"""The command line as a user meets it: settings errors, resolve, models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vllm_console.cli import main


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME and cwd, and none of the settings' variables from the real environment."""
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


def test_bad_port_from_env_file(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (clean_env / ".env").write_text("VLLM_CONSOLE_PORT=abc\n")
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert "VLLM_CONSOLE_PORT='abc'" in err and ".env" in err and "Traceback" not in err


def test_bad_utilization_flag(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--gpu-memory-utilization", "1.7", "models"]) == 2
    err = capsys.readouterr().err
    assert "VLLM_CONSOLE_GPU_MEMORY_UTILIZATION='1.7'" in err and "command line" in err


def test_unparsable_env_line(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (clean_env / ".env").write_text("VLLM_MODEL=ok\nthis is not a setting\n")
    assert main(["resolve", "x"]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "this is not a setting" in err


def test_fleet_with_a_command_is_refused(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--fleet` belongs to the console; with a command it would be silently dropped."""
    with pytest.raises(SystemExit) as exited:
        main(["--fleet", "fleet.yaml", "models"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--fleet" in err and "'models'" in err and "vllm-console up FILE" in err


def test_bad_value_in_real_process(clean_env: Path) -> None:
    env = {**os.environ, "VLLM_CONSOLE_PORT": "abc"}
    out = subprocess.run(
        [sys.executable, "-m", "vllm_console", "models"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "VLLM_CONSOLE_PORT='abc' (from environment)" in out.stderr
    assert "Traceback" not in out.stderr


def test_resolve_json(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = clean_env / "models" / "Org--Tiny"
    model.mkdir(parents=True)
    assert main(["resolve", "Org/Tiny", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["path"] == str(model) and data["rule"] == "model-dir"
    assert [t["rule"] for t in data["tried"]][:2] == ["path", "hf-cache"]


def test_resolve_text_names_rule_and_tries(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resolve", "Org/Absent"]) == 0
    out = capsys.readouterr().out
    assert "rule:   hub" in out and "tried:" in out and "[hf-cache]" in out


def test_models_empty(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "No models found. Looked in:" in out and str(clean_env / "models") in out


def test_models_json_empty(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == []
    assert "Looked in" in captured.err


def test_models_json_is_flat(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Scripts read these keys: the metadata stays beside the entry's own fields."""
    model = clean_env / "models" / "Org--Tiny"
    model.mkdir(parents=True)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
    (model / "config.json").write_text(json.dumps({**config, "torch_dtype": "bfloat16"}))
    assert main(["models", "--json"]) == 0
    (data,) = json.loads(capsys.readouterr().out)
    assert list(data) == [
        "id",
        "path",
        "source",
        "root",
        "format",
        "architecture",
        "model_type",
        "params",
        "dtype",
        "quantization",
        "context_length",
        "size_bytes",
        "stored_bytes",
        "storage",
        "weight_files",
        "ignored_files",
        "complete",
        "problems",
        "notes",
        "revisions",
    ]
    assert (data["architecture"], data["model_type"]) == ("LlamaForCausalLM", "llama")
    assert (data["dtype"], data["params"], data["problems"]) == ("bfloat16", None, ["no weights"])
