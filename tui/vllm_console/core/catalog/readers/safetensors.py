"""Safetensors headers: parameter counts and dtypes, read without touching tensor data.

A safetensors file starts with an 8-byte little-endian length and that many bytes of JSON
(`{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}`). Parsing a 7B model's
header (~30 KB of JSON) costs far more than a stat, so a parsed header is remembered while
its file keeps the same device, inode, size and mtime.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

from vllm_console.core.catalog.readers.config import as_int, load_json

# Safetensors caps its own header at 100 MB; anything bigger is garbage.
MAX_HEADER = 100 * 1024 * 1024
FIRST_READ = 64 * 1024
INDEX_NAME = "model.safetensors.index.json"
MEMO_LIMIT = 20_000

_DTYPES = {
    "BF16": "bfloat16",
    "F16": "float16",
    "F32": "float32",
    "F64": "float64",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "I8": "int8",
    "U8": "uint8",
    "I16": "int16",
    "I32": "int32",
    "I64": "int64",
    "BOOL": "bool",
}


@dataclass(frozen=True)
class SafetensorsHeader:
    """Parameter count and element count per dtype (most first) of one safetensors file."""

    params: int
    dtype_counts: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class ParamsResult:
    params: int | None
    dtype: str | None
    problems: tuple[str, ...] = ()


_Stamp = tuple[int, int, int, int]
_MEMO: dict[str, tuple[_Stamp, SafetensorsHeader]] = {}


def torch_dtype_name(safetensors_dtype: str) -> str:
    return _DTYPES.get(safetensors_dtype, safetensors_dtype.lower())


def read_safetensors_header(path: str) -> tuple[SafetensorsHeader | None, str | None]:
    """One file's header: (header, None) or (None, the reason it could not be read)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return None, exc.strerror or str(exc)
    stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    memo = _MEMO.get(path)
    if memo is not None and memo[0] == stamp:
        return memo[1], None
    header, why = _read_header(path)
    if header is not None:
        if len(_MEMO) >= MEMO_LIMIT:
            _MEMO.clear()
        _MEMO[path] = (stamp, header)
    return header, why


def _read_header(path: str) -> tuple[SafetensorsHeader | None, str | None]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        return None, exc.strerror or str(exc)
    try:
        raw = os.read(fd, FIRST_READ)
        if len(raw) < 8:
            return None, "file shorter than its 8-byte header length"
        length = int.from_bytes(raw[:8], "little")
        if length > MAX_HEADER:
            return None, f"header length {length} is implausible"
        raw = raw[8 : 8 + length]
        while len(raw) < length:
            more = os.read(fd, length - len(raw))
            if not more:
                return None, "header truncated"
            raw += more
    except OSError as exc:
        return None, exc.strerror or str(exc)
    finally:
        os.close(fd)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):
        return None, "header is not valid JSON"
    if not isinstance(header, dict):
        return None, "header is not a JSON object"
    return summarise_header(header)


def summarise_header(header: dict[str, object]) -> tuple[SafetensorsHeader | None, str | None]:
    """Sum the shapes of a parsed header (`__metadata__` skipped)."""
    total = 0
    counts: dict[str, int] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or type(shape := info.get("shape")) is not list:
            return None, f"tensor {name!r} has no shape"
        n = 1
        for dim in shape:
            if type(dim) is not int or dim < 0:
                return None, f"tensor {name!r} has a bad shape"
            n *= dim
        total += n
        dtype = info.get("dtype")
        key = dtype if type(dtype) is str else "?"
        counts[key] = counts.get(key, 0) + n
    ordered = tuple(sorted(counts.items(), key=lambda kv: -kv[1]))
    return SafetensorsHeader(total, ordered), None


def params_from_safetensors(folder: str, names: Iterable[str]) -> ParamsResult:
    """Parameters of the safetensors weights in `folder` (`names`: its files, relative).

    Uses `model.safetensors.index.json`'s `metadata.total_parameters` when present, else
    sums every file's header. The dtype is the one that holds the most elements.
    """
    names = list(names)
    if INDEX_NAME in names:
        index_total = _index_total_parameters(os.path.join(folder, INDEX_NAME))
        if index_total is not None:
            return ParamsResult(index_total, None)
    shards = sorted(n for n in names if n.endswith(".safetensors"))
    total = 0
    counts: dict[str, int] = {}
    problems: list[str] = []
    for name in shards:
        header, why = read_safetensors_header(os.path.join(folder, name))
        if header is None:
            problems.append(f"bad safetensors header: {name}: {why}")
            continue
        total += header.params
        for dtype, n in header.dtype_counts:
            counts[dtype] = counts.get(dtype, 0) + n
    if problems or not shards:
        return ParamsResult(None, None, tuple(problems))
    top = max(counts.items(), key=lambda kv: kv[1])[0] if counts else None
    return ParamsResult(total, torch_dtype_name(top) if top else None)


def _index_total_parameters(path: str) -> int | None:
    index, _ = load_json(path)
    metadata = index.get("metadata") if index is not None else None
    if not isinstance(metadata, dict):
        return None
    total = as_int(metadata.get("total_parameters"))
    return total if total and total > 0 else None


def clear_memo() -> None:
    _MEMO.clear()
