"""LaunchSpec -> argv and environment, presets, saved specs, shell rendering."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from vllm_console.core.serve.spec import (
    LaunchSpec,
    SpecError,
    launch_env,
    load_saved_specs,
    render_shell,
    save_spec,
    serve_args,
)

VLLM = ["/env/bin/vllm", "serve"]


def launch_command(
    spec: LaunchSpec, *, hf_endpoint: str | None, run_dir: Path | None = None
) -> tuple[list[str], dict[str, str]]:
    """argv and added environment as a launch puts them together."""
    env = launch_env(spec, hf_endpoint=hf_endpoint, run_dir=run_dir)
    return [*VLLM, *serve_args(spec)], env


def test_minimal_spec() -> None:
    argv, env = launch_command(LaunchSpec(model="/m/tiny"), hf_endpoint=None)
    assert argv == [
        *VLLM,
        "/m/tiny",
        "--host",
        "127.0.0.1",
        "--port",
        "8000",
        "--gpu-memory-utilization",
        "0.9",
    ]
    assert env == {"HF_HUB_OFFLINE": "1"}


def test_every_field() -> None:
    spec = LaunchSpec(
        model="Org/Name",
        model_is_local=False,
        served_model_name="chat",
        host="0.0.0.0",
        port=9000,
        gpu_memory_utilization=0.85,
        max_model_len=4096,
        dtype="bfloat16",
        tensor_parallel_size=2,
        pipeline_parallel_size=2,
        quantization="awq",
        kv_cache_dtype="fp8",
        enforce_eager=True,
        trust_remote_code=True,
        api_key="sk-1",
        extra_args="--seed 3 --override-generation-config '{\"temperature\": 0.5}'",
    )
    argv, env = launch_command(spec, hf_endpoint="https://mirror.example")
    args = argv[len(VLLM) :]
    assert args[0] == "Org/Name"
    pairs = dict(zip(args[1::2], args[2::2], strict=False))
    assert pairs["--served-model-name"] == "chat" and pairs["--port"] == "9000"
    for flag in (
        "--tensor-parallel-size",
        "--pipeline-parallel-size",
        "--kv-cache-dtype",
        "--quantization",
        "--dtype",
        "--max-model-len",
    ):
        assert flag in args
    assert "--enforce-eager" in args and "--trust-remote-code" in args
    assert args[-2:] == ["--override-generation-config", '{"temperature": 0.5}']
    # hub id: not offline; the key in the environment, never on the command line
    assert env == {"HF_ENDPOINT": "https://mirror.example", "VLLM_API_KEY": "sk-1"}
    assert "sk-1" not in argv and not any(a.startswith("--api") for a in argv)


def test_safe_mode_matches_the_original_workaround(tmp_path: Path) -> None:
    spec = LaunchSpec(model="/m").with_safe_mode()
    argv, env = launch_command(spec, hf_endpoint=None, run_dir=tmp_path)
    assert "--enforce-eager" in argv
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.4"
    assert argv[argv.index("--max-model-len") + 1] == "512"
    assert env["TORCH_COMPILE_DISABLE"] == "1" and env["TORCHDYNAMO_DISABLE"] == "1"
    assert env["TRITON_CACHE_DIR"] == str(tmp_path / "triton-cache")


def test_bad_extra_args() -> None:
    with pytest.raises(SpecError, match="extra arguments"):
        launch_command(LaunchSpec(model="/m", extra_args="--x 'open"), hf_endpoint=None)


def test_shell_script_redacts_and_round_trips() -> None:
    spec = LaunchSpec(model="/models/with space", api_key="sk-secret")
    argv, env = launch_command(spec, hf_endpoint=None)
    env["HF_TOKEN"] = "hf_secret"
    script = render_shell(argv, env)
    assert "sk-secret" not in script and "hf_secret" not in script
    assert "VLLM_API_KEY=***" in script and "HF_TOKEN=***" in script
    exec_line = script.splitlines()[-1]
    assert shlex.split(exec_line)[1:4] == [*VLLM, "/models/with space"]
    assert "sk-secret" in render_shell(argv, env, redact=False)


def test_saved_specs(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "specs.json"
    assert load_saved_specs(path) == {}
    spec = LaunchSpec(model="/m", port=8123, api_key="sk-1", extra_env={"A": "b"})
    save_spec(path, "folder:/m", spec)
    loaded = load_saved_specs(path)["folder:/m"]
    assert loaded.port == 8123 and loaded.extra_env == {"A": "b"}
    assert loaded.api_key is None  # secrets are never written to disk
    path.write_text("{not json")
    assert load_saved_specs(path) == {}
