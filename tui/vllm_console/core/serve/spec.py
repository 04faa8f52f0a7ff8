"""LaunchSpec -> the exact argv and environment of a `vllm serve` run (pure; nothing starts).

The argv is always a list, never a shell string, and never holds the API key: the key goes to
vLLM as `VLLM_API_KEY` in its environment (see `redact`). `render_shell` turns a launch into a
runnable script for people to copy; redacted (the default), it shows `VLLM_API_KEY=***` and
reads the key, and any other secret, from the environment of whoever runs it.

Saved specs are a file of the user's: read without trust (a damaged, huge or odd file means
no saved specs; an entry with a wrong type is dropped) and written atomically, 0600, without
the key.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from vllm_console.core.files import private_dir, read_capped, write_private
from vllm_console.core.serve.redact import (
    API_KEY_ENV,
    REDACTED,
    is_secret_name,
    redact_argv,
    redact_env,
    split_api_key,
)

SAFE_MODE_ENV = {"TORCH_COMPILE_DISABLE": "1", "TORCHDYNAMO_DISABLE": "1"}
SAFE_MODE_UTILIZATION = 0.4
SAFE_MODE_MAX_MODEL_LEN = 512
SPECS_LIMIT = 4 << 20  # one spec is under 1 KB: a bigger file is not ours
SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    # the tokenizer's folder or hub id when it is not the model's (a GGUF file's original)
    tokenizer: str | None = None
    enforce_eager: bool = False
    trust_remote_code: bool = False
    api_key: str | None = None
    extra_args: str = ""
    safe_mode: bool = False
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # The GPUs it may use (indices as NVML numbers them); None: whatever it inherits. Set,
    # it becomes CUDA_VISIBLE_DEVICES, over any value in extra_env.
    gpus: tuple[int, ...] | None = None

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
        data["gpus"] = None if self.gpus is None else list(self.gpus)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LaunchSpec:
        """A spec from its JSON; TypeError for a value of the wrong type (or no model)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name, value in values.items():
            if not plausible(name, value):
                raise TypeError(f"saved spec: {name} is not a valid value")
        if values.get("gpus") is not None:
            values["gpus"] = tuple(values["gpus"])
        return cls(**values)


def _is_int(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_text(value: object) -> bool:
    return isinstance(value, str) and "\0" not in value


def plausible(name: str, value: object) -> bool:
    """Whether a saved spec's field has a value a launch can use."""
    if name in ("model_is_local", "enforce_eager", "trust_remote_code", "safe_mode"):
        return isinstance(value, bool)
    if name == "port":
        return _is_int(value, 1, 65535)
    if name in ("tensor_parallel_size", "pipeline_parallel_size"):
        return _is_int(value, 1, 4096)
    if name == "max_model_len":
        return value is None or _is_int(value, 1, 10**8)
    if name == "gpu_memory_utilization":  # NaN and infinities fail the comparison
        return value is None or (_is_number(value) and 0 < value <= 1)  # type: ignore[operator]
    if name == "gpus":
        items = value if isinstance(value, list | tuple) else [None]
        return value is None or (0 < len(items) <= 64 and all(_is_int(i, 0, 1023) for i in items))
    if name == "extra_env":
        pairs = value.items() if isinstance(value, dict) else [(None, None)]
        return all(_is_text(k) and _is_text(v) for k, v in pairs)
    if name in ("model", "host", "extra_args"):
        return _is_text(value)
    return value is None or _is_text(value)  # the optional strings


class SpecError(ValueError):
    """A spec that cannot become a command line (e.g. unbalanced quotes in extra args)."""


def split_extra_args(extra: str) -> list[str]:
    """The extra arguments as vLLM gets them: without any `--api-key` (see `api_key_of`)."""
    return _extra_and_key(extra)[0]


def _extra_and_key(extra: str) -> tuple[list[str], str | None]:
    try:
        return split_api_key(shlex.split(extra))
    except ValueError as exc:  # shlex's unbalanced quotes, or ApiKeyError
        raise SpecError(f"extra arguments: {exc}") from None


def api_key_of(spec: LaunchSpec) -> str | None:
    """The key vLLM will require: one typed into the extra arguments wins, as vLLM's own
    `--api-key` wins over `VLLM_API_KEY`; else the spec's."""
    return _extra_and_key(spec.extra_args)[1] or spec.api_key or None


def take_api_key(spec: LaunchSpec) -> LaunchSpec:
    """The spec with a key typed into its extra arguments moved to `api_key` (so the chat
    knows it, and saved specs never hold it); SpecError if the extra arguments are bad."""
    rest, key = _extra_and_key(spec.extra_args)
    if key is None:
        return spec
    return replace(spec, api_key=key, extra_args=shlex.join(rest))


def without_secrets(spec: LaunchSpec) -> LaunchSpec:
    """The spec as a run record keeps it: no API key, and the values of secret variables
    and of an `--api-key` left in the extra arguments shown as `***`."""
    try:
        words = shlex.split(spec.extra_args)
        hidden = redact_argv(words)
        extra = spec.extra_args if hidden == words else shlex.join(hidden)
    except ValueError:  # unbalanced quotes: nothing a launch could have run
        extra = ""
    return replace(spec, api_key=None, extra_args=extra, extra_env=redact_env(spec.extra_env))


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
        ("--tokenizer", spec.tokenizer),
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
    return args + split_extra_args(spec.extra_args)  # the API key goes in launch_env


def launch_env(
    spec: LaunchSpec,
    *,
    hf_endpoint: str | None,
    run_dir: Path | None = None,
    hub: str = "huggingface",
    modelscope_endpoint: str | None = None,
) -> dict[str, str]:
    """The variables a launch adds to the inherited environment, the API key among them.

    A hub id launched with `hub` "modelscope" makes vLLM fetch it from ModelScope; a local
    folder (wherever it came from) never reaches a hub."""
    env: dict[str, str] = {}
    if hf_endpoint:
        env["HF_ENDPOINT"] = hf_endpoint
    if spec.model_is_local:
        env["HF_HUB_OFFLINE"] = "1"
    elif hub == "modelscope":
        env.update(modelscope_env(modelscope_endpoint))
    if spec.safe_mode:
        env.update(SAFE_MODE_ENV)
        if run_dir is not None:
            env["TRITON_CACHE_DIR"] = str(run_dir / "triton-cache")
    env.update(spec.extra_env)
    if spec.gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, spec.gpus))
    if key := api_key_of(spec):
        env[API_KEY_ENV] = key
    return env


def modelscope_env(endpoint: str | None) -> dict[str, str]:
    """What makes vLLM download from ModelScope (it checks `.lower() == "true"`), and the
    site: MODELSCOPE_ENDPOINT for current SDKs, MODELSCOPE_DOMAIN (a host they put https://
    in front of) for older ones."""
    env = {"VLLM_USE_MODELSCOPE": "True"}
    if endpoint:
        env["MODELSCOPE_ENDPOINT"] = endpoint
        scheme, _, rest = endpoint.partition("://")
        env["MODELSCOPE_DOMAIN"] = rest if scheme == "https" and "/" not in rest else endpoint
    return env


def render_shell(argv: Sequence[str], env: Mapping[str, str], *, redact: bool = True) -> str:
    """A runnable script reproducing the launch. Redacted, a secret variable is not written
    but required from the environment of whoever runs the script."""
    if redact:
        argv = redact_argv(argv)
    lines = ["#!/usr/bin/env bash", "set -euo pipefail"]
    for name, value in sorted(env.items()):
        if redact and is_secret_name(name):
            # a name a shell cannot hold is only named (its value stays out all the same)
            check = f': "${{{name}:?set {name}}}"  ' if SHELL_NAME.fullmatch(name) else ""
            lines.append(f"{check}# {name}={REDACTED}, read from your environment")
        else:
            lines.append(f"export {name}={shlex.quote(value)}")
    lines.append("exec " + shlex.join(argv))
    return "\n".join(lines) + "\n"


def load_saved_specs(path: Path) -> dict[str, LaunchSpec]:
    """The last spec used for each model; a damaged file means no saved specs, not a crash."""
    try:
        raw = read_capped(path, SPECS_LIMIT)
    except OSError:
        return {}
    return parse_saved_specs(raw)


def parse_saved_specs(raw: bytes) -> dict[str, LaunchSpec]:
    """The specs in a saved-specs file's bytes; damaged entries dropped, never an error."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deep for the parser
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
    """Remember `spec` for `model_key`, without its API key (SpecError: bad extra args)."""
    specs = load_saved_specs(path)
    specs[model_key] = replace(take_api_key(spec), api_key=None)  # secrets stay out
    private_dir(path.parent, owned=path.parent)
    write_private(path, json.dumps({k: v.to_json() for k, v in specs.items()}, indent=2))


@dataclass(frozen=True)
class LaunchRequest:
    """What the launch dialog hands over: the model, the spec, and the exact argv to run;
    `name` is the server's among the fleet's (empty: the served model name, else the id)."""

    model_key: str
    model_id: str
    model_path: str
    spec: LaunchSpec
    argv: tuple[str, ...]
    name: str = ""

    @property
    def server_name(self) -> str:
        return self.name or self.spec.served_model_name or self.model_id
