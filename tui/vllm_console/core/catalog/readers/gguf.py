"""GGUF headers: metadata key/values and tensor infos, read without touching tensor data.

Layout (versions 2 and 3; version 1 used 32-bit counts and is read too): magic `GGUF`,
uint32 version, tensor count, key/value count, the typed key/values, then one info per
tensor (name, n_dims, dims, ggml type, offset). The file is memory-mapped so that skipping a
150,000-string tokenizer array costs no copies; every length is checked against the bytes left,
so a garbage or truncated file yields a reason, never an exception or a huge allocation.

Nothing read is trusted: arrays nest at most `MAX_NESTING` deep (no RecursionError), a header
may walk at most `MAX_VALUES` values (a 10 GB file of one-byte strings would take minutes),
a kept string is at most `MAX_STRING` bytes, and each tensor dimension is at most
`numbers.MAX_DIM` with the element count summed under `numbers.MAX_PARAMS`.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from vllm_console.core.catalog.readers.numbers import MAX_DIM, MAX_PARAMS, implausible
from vllm_console.core.files import open_regular, reason

MAGIC = b"GGUF"
MAX_DIMS = 8
KEEP_ARRAY = 64  # arrays longer than this are skipped, not kept in `metadata`
MAX_NESTING = 8  # arrays of arrays; real files nest one deep at most
MAX_VALUES = 1 << 23  # values walked in one header (a tokenizer has ~1e6: tokens, merges)
MAX_STRING = 1 << 20  # longer strings (a chat template is ~10 KB) are skipped, not kept
MAX_KEY = 1 << 16  # the GGUF spec's own limit on a key's length

# GGUF value types: (struct format, byte size) for the fixed-size ones.
_FIXED = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<?", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
_STRING, _ARRAY = 8, 9

# ggml tensor types (ggml.h); names only, for the dtype summary.
GGML_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
    23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M",
    30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}  # fmt: skip

# llama.cpp's `general.file_type` (enum llama_ftype).
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4",
}  # fmt: skip

_QUANT_IN_NAME = re.compile(
    r"(?i)(?<![a-z0-9])(IQ\d_(?:XXS|XS|NL|S|M)|Q\d_K(?:_(?:XL|S|M|L))?|Q\d_\d|TQ\d_\d"
    r"|MXFP4|BF16|F16|F32)(?![a-z0-9])"
)
_SHARD = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf$")
_PLAIN_FLOATS = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


class _Garbage(Exception):
    """Internal: the bytes do not make a GGUF header. Never leaves this module."""


@dataclass(frozen=True)
class GgufInfo:
    """The header of one GGUF file (or the sum over a split model's shards)."""

    version: int
    metadata: Mapping[str, object] = field(default_factory=dict)
    tensor_count: int = 0
    params: int = 0
    tensor_types: tuple[tuple[str, int], ...] = ()

    @property
    def architecture(self) -> str | None:
        arch = self.metadata.get("general.architecture")
        return arch if isinstance(arch, str) else None

    def arch_int(self, suffix: str) -> int | None:
        """`{arch}.{suffix}` as an int, e.g. `arch_int("context_length")`."""
        value = self.metadata.get(f"{self.architecture}.{suffix}")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def file_type(self) -> str | None:
        value = self.metadata.get("general.file_type")
        return FILE_TYPES.get(value) if isinstance(value, int) else None

    @property
    def head_dim(self) -> int | None:
        explicit = self.arch_int("attention.key_length")
        if explicit:
            return explicit
        width, heads = self.arch_int("embedding_length"), self.arch_int("attention.head_count")
        return width // heads if width and heads else None


class _Cursor:
    """Bounds-checked little-endian reads over a buffer."""

    def __init__(self, buf: mmap.mmap | bytes) -> None:
        self.buf, self.pos, self.end = buf, 0, len(buf)
        self.budget = MAX_VALUES  # values left to walk

    def spend(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            raise _Garbage(f"more than {MAX_VALUES} values in the header")

    def take(self, n: int) -> int:
        if n < 0 or self.pos + n > self.end:
            raise _Garbage("file ends inside the header")
        start = self.pos
        self.pos += n
        return start

    def fixed(self, kind: int) -> object:
        fmt, size = _FIXED[kind]
        value: object = struct.unpack_from(fmt, self.buf, self.take(size))[0]
        return value

    def u32(self) -> int:
        return int(struct.unpack_from("<I", self.buf, self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack_from("<Q", self.buf, self.take(8))[0])

    def string(self, count_u64: bool = True, keep: bool = True) -> str:
        n = self.u64() if count_u64 else self.u32()
        start = self.take(n)
        if not keep or n > MAX_STRING:
            return ""
        return bytes(self.buf[start : start + n]).decode("utf-8", errors="replace")


def _read_value(cur: _Cursor, kind: int, wide: bool) -> object:
    if kind in _FIXED:
        return cur.fixed(kind)
    if kind == _STRING:
        return cur.string(wide)
    if kind == _ARRAY:
        return _read_array(cur, wide, 1)
    raise _Garbage(f"unknown value type {kind}")


def _read_array(cur: _Cursor, wide: bool, depth: int) -> object:
    if depth > MAX_NESTING:
        raise _Garbage(f"arrays nested more than {MAX_NESTING} deep")
    kind = cur.u32()
    count = cur.u64() if wide else cur.u32()
    if kind in _FIXED:
        size = _FIXED[kind][1]
        if count * size > cur.end - cur.pos:
            raise _Garbage("array runs past the end of the file")
        if count > KEEP_ARRAY:
            cur.take(count * size)
            return None
        return [cur.fixed(kind) for _ in range(count)]
    if count > cur.end - cur.pos:  # every element takes at least one byte
        raise _Garbage("array runs past the end of the file")
    if kind not in (_STRING, _ARRAY):
        raise _Garbage(f"unknown array element type {kind}")
    cur.spend(count)
    keep = count <= KEEP_ARRAY
    items = [_read_nested(cur, kind, wide, keep, depth) for _ in range(count)]
    return items if keep else None


def _read_nested(cur: _Cursor, kind: int, wide: bool, keep: bool, depth: int) -> object:
    if kind == _STRING:
        return cur.string(wide, keep)
    value = _read_array(cur, wide, depth + 1)
    return value if keep else None


def _read_header(buf: mmap.mmap | bytes) -> GgufInfo:
    cur = _Cursor(buf)
    if bytes(buf[cur.take(4) : 4]) != MAGIC:
        raise _Garbage("not a GGUF file (bad magic)")
    version = cur.u32()
    if version not in (1, 2, 3):
        raise _Garbage(f"unsupported GGUF version {version}")
    wide = version >= 2
    n_tensors = cur.u64() if wide else cur.u32()
    n_kv = cur.u64() if wide else cur.u32()
    # A key/value takes at least 13 bytes and a tensor info at least 24: reject absurd counts.
    if n_kv * 13 > cur.end or n_tensors * 24 > cur.end:
        raise _Garbage("implausible tensor or key/value count")
    cur.spend(n_kv + n_tensors)
    metadata: dict[str, object] = {}
    for _ in range(n_kv):
        key = cur.string(wide)
        if len(key) > MAX_KEY or not key:
            raise _Garbage("a key longer than the format allows, or empty")
        value = _read_value(cur, cur.u32(), wide)
        if value is not None:
            metadata[key] = value
    params, types = _read_tensor_infos(cur, n_tensors, wide)
    return GgufInfo(version, metadata, n_tensors, params, types)


def _read_tensor_infos(cur: _Cursor, n: int, wide: bool) -> tuple[int, tuple[tuple[str, int], ...]]:
    total = 0
    by_type: dict[str, int] = {}
    for _ in range(n):
        cur.string(wide, keep=False)
        n_dims = cur.u32()
        if n_dims > MAX_DIMS:
            raise _Garbage(f"tensor with {n_dims} dimensions")
        elements = 1
        for _ in range(n_dims):
            dim = cur.u64() if wide else cur.u32()
            if dim > MAX_DIM:
                raise _Garbage(implausible("tensor dimension", dim, "the header"))
            elements *= dim
        kind = GGML_TYPES.get(cur.u32(), "?")
        cur.u64()  # data offset
        total += elements
        if total > MAX_PARAMS:  # each factor is bounded, so this is a few digits at worst
            raise _Garbage(implausible("parameter count", total, "the header"))
        by_type[kind] = by_type.get(kind, 0) + elements
    return total, tuple(sorted(by_type.items(), key=lambda kv: -kv[1]))


def read_gguf(path: str) -> tuple[GgufInfo | None, str | None]:
    """Parse one GGUF file's header: (info, None), or (None, the reason it could not)."""
    try:
        fd, st = open_regular(path)
    except OSError as exc:
        return None, reason(exc)
    try:
        if st.st_size < 24:
            return None, "file too short for a GGUF header"
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:
            return _read_header(mm), None
    except _Garbage as exc:
        return None, str(exc)
    except OSError as exc:
        return None, reason(exc)
    except (ValueError, OverflowError, MemoryError) as exc:
        return None, str(exc)
    finally:
        os.close(fd)


def merge_shards(infos: list[GgufInfo]) -> GgufInfo:
    """One info for a split model: the first shard's metadata, tensors summed over all."""
    first = infos[0]
    by_type: dict[str, int] = {}
    for info in infos:
        for kind, n in info.tensor_types:
            by_type[kind] = by_type.get(kind, 0) + n
    return GgufInfo(
        version=first.version,
        metadata=first.metadata,
        tensor_count=sum(i.tensor_count for i in infos),
        params=sum(i.params for i in infos),
        tensor_types=tuple(sorted(by_type.items(), key=lambda kv: -kv[1])),
    )


def quant_from_name(name: str) -> str | None:
    """The quant type written in a GGUF file name, e.g. `qwen2.5-7b-q4_k_m.gguf` -> Q4_K_M."""
    found = _QUANT_IN_NAME.findall(name)
    return found[-1].upper() if found else None


def split_quant(quant: str | None) -> tuple[str | None, str | None]:
    """A GGUF type -> (dtype, quantization): F16/BF16/F32 are dtypes, the rest quantizations."""
    if quant is None:
        return None, None
    if quant in _PLAIN_FLOATS:
        return _PLAIN_FLOATS[quant], None
    return None, quant


def shard_stem(name: str) -> tuple[str, int, int] | None:
    """`x-00001-of-00003.gguf` -> ("x", 1, 3); None for a file that is not a shard."""
    match = _SHARD.match(name)
    if match is None:
        return None
    return match["stem"], int(match["part"]), int(match["total"])


def gguf_stem(name: str) -> str:
    """The entry name of a GGUF file: the file name without `.gguf` or the shard suffix."""
    shard = shard_stem(name)
    if shard is not None:
        return shard[0]
    return name[: -len(".gguf")] if name.lower().endswith(".gguf") else name
