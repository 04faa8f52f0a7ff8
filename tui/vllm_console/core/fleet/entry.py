"""One server of a fleet file: its keys checked, and made into a Member (see `file`).

A local server's keys are vLLM's own (see `flags`); those a `LaunchSpec` has a field for
go there (so the console shows and estimates them), every other one into its extra
arguments as vLLM's `--config` would pass it. The console's own keys: `name`, `gpus`
(indices as NVML numbers them, a list or "0,1"), `env` (variables for the server),
`safe-mode` (the console's safe preset, applied first, so the entry's own keys override
it), `url` (a remote server, which takes only `url`, `api-key` and `name`).

A model written as a path is a folder (see `values.model_target`); anything else is kept
as written, a hub id or a name that `up` resolves as `serve` does.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from yaml.nodes import MappingNode, Node, ScalarNode

from vllm_console.config import Settings
from vllm_console.core.fleet import flags
from vllm_console.core.fleet.model import Member, Source
from vllm_console.core.fleet.values import (
    Problems,
    env_of,
    gpus_of,
    is_name,
    model_target,
    secret_of,
    show,
    suggest,
    text_of,
)
from vllm_console.core.fleet.yamlread import line_of, value
from vllm_console.core.serve.spec import LaunchSpec

REMOTE_KEYS = ("url", "api-key", "name")
SECRET_KEYS = ("api-key", "hf-token")  # their values are never quoted in a message
CONSOLE_KEYS = ("name", "gpus", "env", "safe-mode", "url")
# Keys of vLLM that are fields of a LaunchSpec.
SPEC_FIELDS = {
    "model": "model",
    "host": "host",
    "port": "port",
    "served-model-name": "served_model_name",
    "gpu-memory-utilization": "gpu_memory_utilization",
    "max-model-len": "max_model_len",
    "dtype": "dtype",
    "tensor-parallel-size": "tensor_parallel_size",
    "pipeline-parallel-size": "pipeline_parallel_size",
    "quantization": "quantization",
    "kv-cache-dtype": "kv_cache_dtype",
    "enforce-eager": "enforce_eager",
    "trust-remote-code": "trust_remote_code",
    "api-key": "api_key",
}
# Fields a key may set to nothing (null): vLLM's own default then holds.
OPTIONAL = {"served_model_name", "gpu_memory_utilization", "max_model_len", "dtype"}
OPTIONAL |= {"quantization", "kv_cache_dtype", "api_key"}


@dataclass
class Draft:
    """A server as its entry gives it; `file` adds what depends on the other entries
    (a default name, a free port) and checks them together."""

    name: str
    line: int
    member: Member
    port_given: bool = False
    lines: dict[str, int] = field(default_factory=dict)  # key -> its line


def read_entry(
    node: Node, name: str | None, path: Path, settings: Settings, problems: Problems
) -> Draft | None:
    """The server an entry describes, or None when there is none to check against the
    others (no model, no url); every problem is added to `problems`."""
    line = line_of(node)
    if not isinstance(node, MappingNode) or node.tag != "tag:yaml.org,2002:map":
        what = "nothing" if isinstance(node, ScalarNode) and not node.value else "not a mapping"
        problems.add(line, f"a server's settings are its keys (model: ..., port: ...): {what}")
        return None
    given, failed = _keys(node, problems)
    if name is not None and "name" in given:
        problems.add(given["name"][0], "the name is the key above this entry: drop `name`")
    elif "name" in given:
        name = text_of(given["name"], problems, "name")
    if name is not None and not is_name(name):
        problems.add(line, f"the name {show(name)} may hold only letters, digits, '.', '_', '-'")
    source = Source(str(path), line)
    lines = {key: at for key, (at, _) in given.items()}
    draft: Draft | None = None
    if "url" in given:
        draft = _remote(given, name or "", source, settings, problems)
    elif "url" in failed or "model" in failed:
        return None
    elif "model" not in given:
        problems.add(line, "no model (or url, for a server that runs elsewhere)")
    else:
        draft = _local(given, name or "", source, path, settings, problems)
    if draft is not None:  # checked with the others even with problems of its own
        draft.lines = lines
    return draft


def _keys(node: MappingNode, problems: Problems) -> tuple[dict[str, tuple[int, Any]], set[str]]:
    """Each key (vLLM's name for it) with its line and plain value; and the keys given
    with a value that is not plain data (each a problem already)."""
    given: dict[str, tuple[int, Any]] = {}
    failed: set[str] = set()
    known = flags.table()
    for key_node, value_node in node.value:
        at = line_of(key_node)
        if not isinstance(key_node, ScalarNode):
            problems.add(at, "a key must be a single word")
            continue
        raw = key_node.value
        flag = known.lookup(raw)
        key = flag.name if flag is not None else raw.replace("_", "-")
        if flag is None and key not in CONSOLE_KEYS:
            names = [*CONSOLE_KEYS, *known.names()]
            problems.add(at, f"unknown key {show(raw)}{suggest(key, names)}")
            continue
        if key in given or key in failed:
            problems.add(at, f"{key} is given twice")
            continue
        try:
            given[key] = (line_of(value_node), value(value_node))
        except ValueError as exc:
            problems.add(line_of(value_node), f"{key}: {exc}")
            failed.add(key)
    return given, failed


def _remote(
    given: dict[str, tuple[int, Any]],
    name: str,
    source: Source,
    settings: Settings,
    problems: Problems,
) -> Draft | None:
    for key, (at, _) in given.items():
        if key not in REMOTE_KEYS:
            problems.add(
                at,
                f"{key} is for a server the console starts: a remote server (url) "
                "takes only url, api-key and name",
            )
    url = text_of(given["url"], problems, "url")
    parsed = urlparse(url or "")
    if url is not None and (
        parsed.scheme not in ("http", "https") or not parsed.hostname or " " in url
    ):
        problems.add(given["url"][0], f"url: expected http://HOST:PORT, not {show(url)}")
        return None
    if url is None:
        return None
    api_key = settings.api_key
    if "api-key" in given:
        api_key = secret_of(given["api-key"], problems)
    base = url.rstrip("/").removesuffix("/v1").rstrip("/")
    member = Member(name, url=base, api_key=api_key, source=source)
    return Draft(name, source.line or 0, member)


def _local(
    given: dict[str, tuple[int, Any]],
    name: str,
    source: Source,
    path: Path,
    settings: Settings,
    problems: Problems,
) -> Draft | None:
    fields: dict[str, Any] = {}
    extra: list[str] = []
    known = flags.table()
    for key, (at, given_value) in given.items():
        if key in CONSOLE_KEYS:
            continue
        flag = known.lookup(key)
        assert flag is not None  # _keys kept only known keys
        try:
            args = flags.to_args(flag, given_value)
        except ValueError as exc:
            shown = "" if key in SECRET_KEYS else f" {show(given_value)}"
            problems.add(at, f"{key}{shown}: {exc}")
            continue
        if key == "hf-token":  # vLLM reads HF_TOKEN from its environment as well
            problems.add(at, "hf-token: set HF_TOKEN in env (a command line is public)")
        elif any("\0" in arg for arg in args):
            problems.add(at, f"{key}: a value cannot hold a NUL character")
        elif key in SPEC_FIELDS:
            _spec_field(key, at, given_value, fields, extra, problems)
        else:
            extra += args
    model = fields.pop("model", None)
    gpus = gpus_of(given["gpus"], problems) if "gpus" in given else None
    env = env_of(given["env"], problems) if "env" in given else {}
    if gpus and "CUDA_VISIBLE_DEVICES" in env:
        problems.add(given["env"][0], "CUDA_VISIBLE_DEVICES: give gpus or this, not both")
    safe = given.get("safe-mode", (0, False))
    if not isinstance(safe[1], bool):
        problems.add(safe[0], f"safe-mode: expected true or false, not {show(safe[1])}")
    if model is None:
        return None
    target, is_folder = model_target(model, path, settings)
    spec = LaunchSpec(
        model=target,
        model_is_local=is_folder,
        host=settings.host,
        port=settings.port,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        max_model_len=settings.max_model_len,
        api_key=settings.api_key,
    )
    if safe[1] is True:
        spec = spec.with_safe_mode()
    spec = replace(spec, **fields, gpus=gpus, extra_env=env, extra_args=shlex.join(extra))
    spec = _parallel(spec, gpus, given, problems)
    draft = Draft(name, source.line or 0, Member(name, spec=spec, source=source))
    draft.port_given = "port" in fields
    return draft


def _spec_field(
    key: str,
    at: int,
    given: Any,
    fields: dict[str, Any],
    extra: list[str],
    problems: Problems,
) -> None:
    """A checked value (see `flags.to_args`) into its LaunchSpec field."""
    name = SPEC_FIELDS[key]
    if given is None:
        if name in OPTIONAL:
            fields[name] = None
        elif key == "model":
            problems.add(at, "model: expected a model folder or hub id, not nothing")
        return
    if key == "gpu-memory-utilization":
        if not 0 < given <= 1:
            problems.add(at, f"{key}: expected a fraction of the GPU's memory, 0 < it <= 1")
        fields[name] = float(given)
    elif key == "max-model-len":
        size = flags.size_value(given)
        if size is None:  # auto (-1): vLLM fits it to the memory; the spec has no word for it
            extra += ["--max-model-len", str(given)]
        fields[name] = size
    elif key == "served-model-name" and isinstance(given, list):
        if len(given) != 1:
            problems.add(at, "served-model-name: one name (the console chats with it by it)")
        fields[name] = str(given[0]) if given else None
    elif key == "api-key":
        fields[name] = secret_of((at, given), problems)
    elif key in ("model", "host", "served-model-name"):
        text = str(given)
        if not text or not text.isprintable() or (key == "host" and " " in text):
            problems.add(at, f"{key}: expected text on one line, not {show(given)}")
        fields[name] = text
    elif key in ("dtype", "quantization", "kv-cache-dtype"):
        fields[name] = str(given)
    else:
        fields[name] = given


def _parallel(
    spec: LaunchSpec,
    gpus: tuple[int, ...] | None,
    given: dict[str, tuple[int, Any]],
    problems: Problems,
) -> LaunchSpec:
    """Tensor parallel size follows the GPUs unless set; with both, the sizes must use
    exactly the GPUs listed (vLLM takes tensor x pipeline x data parallel of them)."""
    if not gpus:
        return spec
    data = given.get("data-parallel-size", (0, 1))[1]
    data = data if isinstance(data, int) and data > 0 else 1
    others = spec.pipeline_parallel_size * data
    if "tensor-parallel-size" not in given and len(gpus) % others == 0:
        return replace(spec, tensor_parallel_size=len(gpus) // others)
    world = spec.tensor_parallel_size * others
    if world != len(gpus):
        sizes = f"tensor-parallel-size {spec.tensor_parallel_size} x pipeline-parallel-size "
        sizes += f"{spec.pipeline_parallel_size}" + (f" x data-parallel-size {data}" * (data > 1))
        problems.add(given["gpus"][0], f"gpus: {sizes} = {world} GPUs, but {len(gpus)} listed")
    return spec
