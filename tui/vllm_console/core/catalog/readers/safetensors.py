"""Safetensors headers: parameter counts and dtypes, read without touching tensor data.

A safetensors file starts with an 8-byte little-endian length and that many bytes of JSON
(`{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}`). Parsing a 7B model's
header (~30 KB of JSON) costs far more than a stat, so a parsed header is remembered while
its file keeps the same device, inode, size and mtime.

The headers also sort elements into parameters, packed words and quantization bookkeeping
(`quant.kind_of`), so that a quantized checkpoint's logical parameters can be counted.

Sizes are not trusted: the header length is checked against the format's own cap before a
byte of it is read, every dimension against `numbers.MAX_DIM`, and the parameter count
against `numbers.MAX_PARAMS` as it is summed (a header of `[2**62] * 20` shapes is a problem,
not a 1,240-bit number).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

from vllm_console.core.catalog.readers.numbers import MAX_DIM, MAX_PARAMS, implausible
from vllm_console.core.catalog.readers.quant import NO_KINDS, TensorKinds, kind_of, logical_params
from vllm_console.core.files import NOT_REGULAR, open_regular, reason

# Safetensors caps its own header at 100 MB; anything bigger is garbage.
MAX_HEADER = 100 * 1024 * 1024
FIRST_READ = 64 * 1024
INDEX_NAME = "model.safetensors.index.json"  # also in `weightfiles`, which reads it
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
    """Element count, element count per dtype (most first) and per kind (packed, scales: see
    `quant.TensorKinds`) of one safetensors file."""

    params: int
    dtype_counts: tuple[tuple[str, int], ...]
    kinds: TensorKinds = NO_KINDS


@dataclass(frozen=True)
class ParamsResult:
    """Parameters of the weight files (logical ones for a quantized checkpoint), the dtype
    holding the most elements, every dtype stored (safetensors names, most elements first)."""

    params: int | None
    dtype: str | None
    problems: tuple[str, ...] = ()
    stored_dtypes: tuple[str, ...] = ()


_Stamp = tuple[int, int, int, int]
_MEMO: dict[str, tuple[_Stamp, SafetensorsHeader]] = {}


def torch_dtype_name(safetensors_dtype: str) -> str:
    return _DTYPES.get(safetensors_dtype, safetensors_dtype.lower())


def read_safetensors_header(path: str) -> tuple[SafetensorsHeader | None, str | None]:
    """One file's header: (header, None) or (None, the reason it could not be read;
    `files.NOT_REGULAR` for a FIFO, socket or device)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return None, reason(exc)
    except ValueError:  # a NUL in the name
        return None, "invalid file name"
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
        fd, _ = open_regular(path)
    except OSError as exc:
        return None, reason(exc)
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
        return None, reason(exc)
    finally:
        os.close(fd)
    return parse_header(raw)


def parse_header(raw: bytes) -> tuple[SafetensorsHeader | None, str | None]:
    """A header's JSON (the bytes after the 8-byte length), summed; never raises."""
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):  # ValueError: also a number of 4,300+ digits
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
            return None, f"tensor {_name(name)} has no shape"
        n = 1
        for dim in shape:
            if type(dim) is not int or dim < 0:
                return None, f"tensor {_name(name)} has a bad shape"
            if dim > MAX_DIM:
                return None, implausible("dimension", dim, f"tensor {_name(name)}")
            n *= dim
            if n > MAX_PARAMS:
                return None, implausible("element count", n, f"tensor {_name(name)}")
        total += n
        if total > MAX_PARAMS:
            return None, implausible("parameter count", total, "the header")
        dtype = info.get("dtype")
        key = dtype if type(dtype) is str and len(dtype) <= 16 else "?"  # e.g. "F8_E4M3"
        counts[key] = counts.get(key, 0) + n
    ordered = tuple(sorted(counts.items(), key=lambda kv: -kv[1]))
    kinds = _kinds(header) if counts.keys() - _FLOATS else NO_KINDS
    return SafetensorsHeader(total, ordered, kinds), None


# A header of only these holds no quantized weights: its tensors need not be sorted by kind
# (most headers: a second pass over the names costs a tenth of the parse).
_FLOATS = {"BF16", "F16", "F32", "F64"}


def _kinds(header: dict[str, object]) -> TensorKinds:
    """The elements by kind of a header `summarise_header` found well formed."""
    by_kind = [0, 0, 0, 0, 0]
    for name, info in header.items():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        n = 1
        for dim in info["shape"]:
            n *= dim
        by_kind[kind_of(name, info.get("dtype"))] += n
    return TensorKinds(*by_kind[1:])


def _name(name: str) -> str:
    """A tensor's name for a problem, cut short (a hostile header's names can be megabytes)."""
    return repr(name if len(name) <= 80 else name[:80] + "…")


def params_from_safetensors(
    folder: str, names: Iterable[str], quantization: str | None = None
) -> ParamsResult:
    """Parameters of the safetensors files `names` in `folder` (the ones vLLM loads: see
    `weightfiles`), summed from their headers; logical ones if `quantization` is a label
    (see `quant.logical_params`). The dtype is the one that holds the most elements.
    """
    shards = sorted(n for n in names if n.endswith(".safetensors"))
    total = 0
    counts: dict[str, int] = {}
    kinds = NO_KINDS
    problems: list[str] = []
    for name in shards:
        header, why = read_safetensors_header(os.path.join(folder, name))
        if why == NOT_REGULAR:
            problems.append(f"{name} is {NOT_REGULAR}")
            continue
        if header is None:
            problems.append(f"bad safetensors header: {name}: {why}")
            continue
        total += header.params
        kinds = kinds.plus(header.kinds)
        for dtype, n in header.dtype_counts:
            counts[dtype] = counts.get(dtype, 0) + n
    if total > MAX_PARAMS:
        problems.append(implausible("parameter count", total, "the safetensors headers"))
    if problems or not shards:
        return ParamsResult(None, None, tuple(problems))
    ordered = tuple(sorted(counts, key=lambda d: -counts[d]))
    top = ordered[0] if ordered else None
    params = logical_params(total, kinds, quantization)
    if params > MAX_PARAMS:  # packed words of a hostile header
        return ParamsResult(None, None, (implausible("parameter count", params, "the headers"),))
    return ParamsResult(params, torch_dtype_name(top) if top else None, (), ordered)


def clear_memo() -> None:
    _MEMO.clear()
