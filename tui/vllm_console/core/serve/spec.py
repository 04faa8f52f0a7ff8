"""LaunchSpec -> the exact argv and environment of a `vllm serve` run (pure; nothing starts).

The argv is always a list, never a shell string. `render_shell` turns it into a runnable
script for people to copy, with the API key and tokens redacted unless asked otherwise.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

SAFE_MODE_ENV = {"TORCH_COMPILE_DISABLE": "1", "TORCHDYNAMO_DISABLE": "1"}
SAFE_MODE_UTILIZATION = 0.4
SAFE_MODE_MAX_MODEL_LEN = 512
SECRET_ENV_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


@dataclass(frozen=True)
class LaunchSpec:
    """Everything the user chooses for one launch. `model` is a local path or a hub id."""

    model: str
    model_is_local: bool = True
    served_model_name: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    gpu_memory_utilization: float | None = 0.9
    max_model_len: int | None = None
    dtype: str | None = None
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    enforce_eager: bool = False
    trust_remote_code: bool = False
    api_key: str | None = None
    extra_args: str = ""
    safe_mode: bool = False
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def with_safe_mode(self) -> LaunchSpec:
        """The original launch script's workaround for compile failures and small GPUs."""
        return replace(
            self,
            safe_mode=True,
            enforce_eager=True,
            gpu_memory_utilization=SAFE_MODE_UTILIZATION,
            max_model_len=SAFE_MODE_MAX_MODEL_LEN,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["extra_env"] = dict(self.extra_env)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LaunchSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class SpecError(ValueError):
    """A spec that cannot become a command line (e.g. unbalanced quotes in extra args)."""


def split_extra_args(extra: str) -> list[str]:
    try:
        return shlex.split(extra)
    except ValueError as exc:
        raise SpecError(f"extra arguments: {exc}") from None


def serve_args(spec: LaunchSpec) -> list[str]:
    """The arguments after `vllm serve`: the model first, then the options."""
    args = [spec.model, "--host", spec.host, "--port", str(spec.port)]
    if spec.served_model_name:
        args += ["--served-model-name", spec.served_model_name]
    if spec.gpu_memory_utilization is not None:
        args += ["--gpu-memory-utilization", f"{spec.gpu_memory_utilization:g}"]
    if spec.max_model_len is not None:
        args += ["--max-model-len", str(spec.max_model_len)]
    for flag, value in (
        ("--dtype", spec.dtype),
        ("--quantization", spec.quantization),
        ("--kv-cache-dtype", spec.kv_cache_dtype),
    ):
        if value:
            args += [flag, value]
    if spec.tensor_parallel_size != 1:
        args += ["--tensor-parallel-size", str(spec.tensor_parallel_size)]
    if spec.pipeline_parallel_size != 1:
        args += ["--pipeline-parallel-size", str(spec.pipeline_parallel_size)]
    if spec.enforce_eager:
        args.append("--enforce-eager")
    if spec.trust_remote_code:
        args.append("--trust-remote-code")
    if spec.api_key:
        args += ["--api-key", spec.api_key]
    return args + split_extra_args(spec.extra_args)


def launch_env(
    spec: LaunchSpec, *, hf_endpoint: str | None, run_dir: Path | None = None
) -> dict[str, str]:
    """The variables a launch adds to the inherited environment."""
    env: dict[str, str] = {}
    if hf_endpoint:
        env["HF_ENDPOINT"] = hf_endpoint
    if spec.model_is_local:
        env["HF_HUB_OFFLINE"] = "1"
    if spec.safe_mode:
        env.update(SAFE_MODE_ENV)
        if run_dir is not None:
            env["TRITON_CACHE_DIR"] = str(run_dir / "triton-cache")
    env.update(spec.extra_env)
    return env


def redact_argv(argv: Sequence[str]) -> list[str]:
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--api-key":
            out[i + 1] = "***"
    return [("--api-key=***" if a.startswith("--api-key=") else a) for a in out]


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    return {
        k: ("***" if any(word in k.upper() for word in SECRET_ENV_WORDS) else v)
        for k, v in env.items()
    }


def render_shell(argv: Sequence[str], env: Mapping[str, str], *, redact: bool = True) -> str:
    """A runnable script reproducing the launch."""
    if redact:
        argv, env = redact_argv(argv), redact_env(env)
    lines = ["#!/usr/bin/env bash", "set -euo pipefail"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items())]
    lines.append("exec " + shlex.join(argv))
    return "\n".join(lines) + "\n"


def load_saved_specs(path: Path) -> dict[str, LaunchSpec]:
    """The last spec used for each model; a damaged file means no saved specs, not a crash."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    specs: dict[str, LaunchSpec] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            try:
                specs[key] = LaunchSpec.from_json(value)
            except TypeError:
                continue
    return specs


def save_spec(path: Path, model_key: str, spec: LaunchSpec) -> None:
    specs = load_saved_specs(path)
    specs[model_key] = replace(spec, api_key=None)  # secrets stay out of the file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: v.to_json() for k, v in specs.items()}, indent=2))
    tmp.replace(path)


@dataclass(frozen=True)
class LaunchRequest:
    """What the launch dialog hands over: the model, the spec, and the exact argv to run."""

    model_key: str
    model_id: str
    model_path: str
    spec: LaunchSpec
    argv: tuple[str, ...]
