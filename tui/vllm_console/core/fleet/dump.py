"""The fleet file written from members: the format `file` reads, in its mapping form.

Only what differs from what reading would give anyway is written (a server's port is
always written: it is what its clients connect to, so the file pins it). A launch's extra
arguments become vLLM's keys again (see `flags.from_args`). No secret is ever written:
not the API keys (reading the file takes them from VLLM_API_KEY), nor a `--hf-token`, nor
variables whose name says they hold one (HF_TOKEN...): the header names those left out,
to be set in the environment of whoever starts the fleet.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from vllm_console.config import Settings
from vllm_console.core.files import write_private
from vllm_console.core.fleet import flags
from vllm_console.core.fleet.entry import SPEC_FIELDS
from vllm_console.core.fleet.model import Member
from vllm_console.core.fleet.values import FleetFileError, is_name
from vllm_console.core.serve.redact import is_secret_name
from vllm_console.core.serve.spec import LaunchSpec, SpecError, split_extra_args
from vllm_console.core.text import visible

HEADER = """\
# vllm-console fleet: `vllm-console up FILE` starts these servers. The keys are
# vLLM's own (as in `vllm serve --config`) plus gpus, env, safe-mode and url.
# API keys are not saved: each server's is read from VLLM_API_KEY.
"""


class _Dumper(yaml.SafeDumper):
    """PyYAML, told to write Unicode as it is, writes a line separator (U+0085, U+2028)
    raw inside quotes, where reading it back folds it into a space: any text that is not
    printable is written double-quoted, where such characters are escaped."""

    def choose_scalar_style(self) -> str:
        event = self.event
        if isinstance(event, yaml.ScalarEvent) and not event.value.isprintable():
            return '"'
        return str(super().choose_scalar_style())


def _flow_list(dumper: yaml.SafeDumper, items: list[Any]) -> yaml.Node:
    """A list of values on one line (gpus: [0, 1]); mappings stay one key a line."""
    flat = not any(isinstance(item, list | dict) for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flat)


_Dumper.add_representer(list, _flow_list)


def dump_fleet(members: Sequence[Member], settings: Settings) -> str:
    """The fleet file's text for `members`; FleetFileError ("NAME: what" each) for a
    member a fleet file cannot hold (a bad or repeated name, an extra argument that is
    no flag of vLLM's serve)."""
    servers: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    secrets: list[str] = []
    seen: set[str] = set()
    for member in members:
        if not is_name(member.name):
            problems.append(visible(f"{member.name!r}: not a server name (letters, digits, .-_)"))
            continue
        if member.name in seen:
            problems.append(visible(f"{member.name}: two servers have this name"))
            continue
        seen.add(member.name)
        if member.spec is None:
            servers[member.name] = {"url": member.url}
            continue
        try:
            servers[member.name], left_out = _local(member.spec, settings)
        except (ValueError, SpecError) as exc:
            problems.append(visible(f"{member.name}: {exc}"))
            continue
        secrets += [f"{member.name}: {name}" for name in left_out]
    if problems:
        raise FleetFileError(problems)
    header = HEADER
    if secrets:
        names = ", ".join(secrets)
        header += f"# Not saved, set them in the environment instead: {visible(names)}\n"
    body = yaml.dump(
        {"servers": servers},
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=1000,
        default_flow_style=False,
    )
    return header + body


def save_fleet(path: Path, members: Sequence[Member], settings: Settings) -> None:
    """Write `members` to the fleet file at `path` (atomically, readable by its owner
    alone); FleetFileError as `dump_fleet`, OSError if it cannot be written."""
    write_private(path, dump_fleet(members, settings))


def defaults(spec: LaunchSpec, settings: Settings, data_parallel: int = 1) -> LaunchSpec:
    """What reading an entry with only this spec's model, gpus and safe mode would give."""
    base = LaunchSpec(
        model=spec.model,
        model_is_local=spec.model_is_local,
        host=settings.host,
        port=settings.port,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        max_model_len=settings.max_model_len,
        api_key=settings.api_key,
        gpus=spec.gpus,
    )
    if spec.safe_mode:
        base = base.with_safe_mode()
    others = spec.pipeline_parallel_size * data_parallel
    if spec.gpus and len(spec.gpus) % others == 0:
        base = replace(base, tensor_parallel_size=len(spec.gpus) // others)
    return base


def _local(spec: LaunchSpec, settings: Settings) -> tuple[dict[str, Any], list[str]]:
    """The entry of a local server, and the secrets left out of it."""
    extra = flags.from_args(split_extra_args(spec.extra_args))
    data_parallel = next((v for f, v in extra if f.name == "data-parallel-size"), 1)
    base = defaults(spec, settings, data_parallel if isinstance(data_parallel, int) else 1)
    model = spec.model
    if spec.model_is_local and not os.path.isabs(model):
        model = os.path.normpath(settings.cwd / model)
    entry: dict[str, Any] = {"model": model}
    for key, name in SPEC_FIELDS.items():
        mine = getattr(spec, name)
        mine = None if mine == "" else mine  # an empty served name is no name
        if key in ("model", "api-key") or (key != "port" and mine == getattr(base, name)):
            continue
        entry[key] = mine
    if spec.gpus is not None:
        entry["gpus"] = list(spec.gpus)
    env = {k: v for k, v in spec.extra_env.items() if not is_secret_name(k)}
    left_out = [k for k in spec.extra_env if k not in env]
    if env:
        entry["env"] = env
    if spec.safe_mode:
        entry["safe-mode"] = True
    for flag, value in extra:  # as on vLLM's command line, a later value wins
        if flag.name == "hf-token":
            left_out.append("HF_TOKEN (given as --hf-token)")
        else:
            entry[flag.name] = value
    return entry, left_out
