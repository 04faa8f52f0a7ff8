"""What a model's own files say: config.json, safetensors and GGUF headers, as a `Described`.

Used by `catalog.detail` for cache repos (through the chosen snapshot's links) and model
folders alike; `encode`/`decode` turn a `Described` into plain data for `catalog_index`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllm_console import compat
from vllm_console.core.catalog import folders, records
from vllm_console.core.catalog.entry import Format, ModelEntry, Revision
from vllm_console.core.catalog.meta import NO_META, ModelMeta
from vllm_console.core.catalog.readers.config import config_meta, load_json, quantization_from_name
from vllm_console.core.catalog.readers.gguf import (
    GgufInfo,
    merge_shards,
    quant_from_name,
    read_gguf,
    shard_stem,
)
from vllm_console.core.catalog.readers.gguf import split_quant as split_gguf_quant
from vllm_console.core.catalog.readers.numbers import (
    MAX_CONTEXT,
    MAX_COUNT,
    MAX_DIM,
    MAX_PARAMS,
    implausible,
    plausible,
)
from vllm_console.core.catalog.readers.quant import compute_dtype
from vllm_console.core.catalog.readers.safetensors import (
    ParamsResult,
    params_from_safetensors,
    torch_dtype_name,
)
from vllm_console.core.catalog.readers.weightfiles import NO_WEIGHTS, select
from vllm_console.core.files import NOT_REGULAR

_FORMATS = frozenset(str(f) for f in Format)


@dataclass(frozen=True)
class Described:
    """What a model's own files say: the weights' format, the metadata, the parsed config (or
    GGUF metadata), what is wrong with them, the weight files vLLM loads and the others with
    the reason they are not loaded (name, why). Merged into the entry."""

    format: Format = Format.UNKNOWN
    meta: ModelMeta = NO_META
    config: dict[str, object] = dataclasses.field(default_factory=dict)
    problems: tuple[str, ...] = ()
    weights: tuple[str, ...] = ()
    ignored: tuple[tuple[str, str], ...] = ()


def encode(d: Described) -> tuple[Any, ...]:
    """A `Described` as plain data, for the index."""
    return str(d.format), d.meta.as_tuple(), d.config, d.problems, d.weights, d.ignored


def decode(values: Any) -> Described | None:
    """`encode`'s data back; None if it is not what `encode` makes (an older index, or
    damaged or hostile bytes: see `records`)."""
    if type(values) is not tuple or len(values) != 6:
        return None
    fmt, meta, config, problems, loaded, ignored = values
    if type(fmt) is not str or fmt not in _FORMATS or not records.is_meta(meta):
        return None
    if not records.is_strs(problems) or not records.is_json_object(config):
        return None
    if not records.is_strs(loaded) or not _is_pairs(ignored):
        return None
    return Described(Format(fmt), ModelMeta(*meta), config, problems, loaded, ignored)


def merged(
    entry: ModelEntry,
    d: Described,
    size: int | None,
    files: Sequence[str],
    problems: Sequence[str],
    revisions: tuple[Revision, ...] | None = None,
    *,
    exact: bool = True,
    unreferenced: int | None = None,
    notes: tuple[str, ...] = (),
) -> ModelEntry:
    """The detailed entry: `entry`'s name, place and (unless given) revisions, what its files
    say (`d`) and what its walk found (size, files, problems before `d`'s).

    Every source's detailed entry is made here, so each has every field. Made as
    `ModelEntry.listed` makes its entries (a `compat.bare_instance`, every field set; a test
    compares the result with the dataclass's own `__init__`): a warm scan makes one per model,
    and the frozen `__init__` takes 2.9 µs to this 1.1.
    """
    made, fields_ = compat.bare_instance(ModelEntry)
    fields_["id"] = entry.id
    fields_["path"] = entry.path
    fields_["source"] = entry.source
    fields_["root"] = entry.root
    fields_["revisions"] = entry.revisions if revisions is None else revisions
    fields_["format"] = d.format
    fields_["meta"] = d.meta
    fields_["size_bytes"] = size
    fields_["files"] = tuple(files)
    fields_["weight_files"] = d.weights
    fields_["ignored_files"] = d.ignored
    fields_["problems"] = (*problems, *d.problems)
    fields_["detailed"] = True
    fields_["config"] = d.config
    fields_["exact"] = exact
    fields_["unreferenced_bytes"] = unreferenced
    fields_["notes"] = notes
    return made


def _is_pairs(value: object) -> bool:
    return type(value) is tuple and all(
        type(pair) is tuple and len(pair) == 2 and records.is_strs(pair) for pair in value
    )


def shard_problems(paths: list[str]) -> list[str]:
    parts = [shard_stem(os.path.basename(p)) for p in paths]
    totals = {p[2] for p in parts if p is not None}
    if not totals:
        return []
    have = {p[1] for p in parts if p is not None}
    missing = sorted(set(range(1, max(totals) + 1)) - have)
    if missing:
        return [f"missing GGUF shards: {', '.join(map(str, missing))} of {max(totals)}"]
    return []


def describe_dir(entry: ModelEntry, folder: str, files: Sequence[str]) -> Described:
    """What a model directory's config.json and weights say."""
    top = [f for f in files if "/" not in f]
    ggufs = sorted(f for f in files if f.endswith((".gguf", ".GGUF")))
    fmt = _format_of(top, ggufs)
    if fmt is Format.GGUF:
        return describe_gguf(entry.id, _first_group(folder, ggufs))
    problems: list[str] = []
    config: dict[str, object] = {}
    info = NO_META
    if "config.json" not in top:
        problems.append("no config.json")
    else:
        loaded, why = load_json(os.path.join(folder, "config.json"))
        if why == NOT_REGULAR:
            problems.append(f"config.json is {NOT_REGULAR}")
        elif loaded is None:
            problems.append(f"unreadable config.json: {why}")
        else:
            config, (info, implausible) = loaded, config_meta(loaded)
            problems += implausible
    if fmt is Format.UNKNOWN:
        problems.append("no weights")
    quantization = info.quantization or quantization_from_name(entry.id)
    picked = select(folder, top) if fmt is not Format.UNKNOWN else NO_WEIGHTS
    problems += picked.problems
    params = ParamsResult(None, None)
    if fmt is Format.SAFETENSORS:
        if picked.index_total is not None and not quantization:
            params = ParamsResult(picked.index_total, None)  # the headers need not be read
        else:
            params = params_from_safetensors(folder, picked.loaded, quantization)
        problems += params.problems
    storage = ", ".join(torch_dtype_name(d) for d in params.stored_dtypes[:3]) or None
    meta = dataclasses.replace(
        info,
        params=params.params,
        dtype=compute_dtype(config, params.stored_dtypes) or info.dtype or params.dtype,
        quantization=quantization,
        stored_bytes=_stored_bytes(folder, picked.loaded),
        storage=storage,
    )
    ignored = picked.ignored + tuple((g, _GGUF_BESIDE) for g in ggufs if "/" not in g)
    nested = sorted(f for f in files if "/" in f and f.endswith(_WEIGHT_LIKE))
    ignored += tuple((f, _NESTED) for f in nested)
    return Described(fmt, meta, config, tuple(problems), picked.loaded, ignored)


_GGUF_BESIDE = "vLLM loads a GGUF file only when it is named as the model"
_NESTED = "in a subfolder: vLLM loads weights from the model's top folder only"
_WEIGHT_LIKE = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".GGUF")


def _stored_bytes(folder: str, names: Sequence[str]) -> int | None:
    """The weight files' bytes on disk (what a quantized checkpoint takes in memory)."""
    total = 0
    for name in names:
        try:
            total += os.stat(os.path.join(folder, name)).st_size
        except (OSError, ValueError):
            return None
    return total or None


def _format_of(top: Sequence[str], ggufs: Sequence[str]) -> Format:
    if any(f.endswith(".safetensors") for f in top):
        return Format.SAFETENSORS
    if any(folders.is_bin_weight(f) for f in top):
        return Format.BIN
    if ggufs:
        return Format.GGUF
    return Format.UNKNOWN


def _first_group(folder: str, ggufs: Sequence[str]) -> list[str]:
    return folders.gguf_group(Path(folder) / ggufs[0])


def describe_gguf(entry_id: str, paths: Sequence[str]) -> Described:
    infos: list[GgufInfo] = []
    problems: list[str] = []
    for path in paths:
        info, why = read_gguf(path)
        if why == NOT_REGULAR:
            problems.append(f"{os.path.basename(path)} is {NOT_REGULAR}")
        elif info is None:
            problems.append(f"bad GGUF header: {os.path.basename(path)}: {why}")
        else:
            infos.append(info)
    quant = quant_from_name(os.path.basename(paths[0])) if paths else None
    if not infos:
        dtype, quantization = split_gguf_quant(quant)
        meta = ModelMeta(dtype=dtype, quantization=quantization)
        return Described(Format.GGUF, meta, problems=tuple(problems))
    info = merge_shards(infos)
    dtype, quantization = split_gguf_quant(quant or info.file_type)

    def bounded(what: str, value: int | None, bound: int) -> int | None:
        if not value or plausible(value, bound):
            return value or None
        problems.append(implausible(what, value, "the GGUF header"))
        return None

    meta = ModelMeta(
        architecture=info.architecture,
        model_type=info.architecture,
        params=bounded("parameter count", info.params, MAX_PARAMS),
        dtype=dtype,
        quantization=quantization or quantization_from_name(entry_id),
        context_length=bounded("context length", info.arch_int("context_length"), MAX_CONTEXT),
        num_layers=bounded("layer count", info.arch_int("block_count"), MAX_COUNT),
        num_kv_heads=bounded(
            "KV head count",
            info.arch_int("attention.head_count_kv") or info.arch_int("attention.head_count"),
            MAX_COUNT,
        ),
        head_dim=bounded("head size", info.head_dim, MAX_DIM),
    )
    names = tuple(os.path.basename(p) for p in paths)
    return Described(Format.GGUF, meta, dict(info.metadata), tuple(problems), names)
