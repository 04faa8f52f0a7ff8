"""Weightless copies of published checkpoints, built on disk from `tests/checkpoints/*.json.gz`.

Each archive holds one repo as its files' names say it: config.json and the other small JSON
files verbatim (index files with their `weight_map`), every safetensors file's tensor list
(name, dtype, shape, in file order), GGUF headers (metadata and tensor infos) and the sizes of
the other files. `build` writes a folder from it: real headers, and the data as a hole (the
file is truncated to its full size, so it is sparse: a 93 GB Mixtral takes a few MB of disk).
"""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path
from typing import Any

from tests.fakes.cachegen import gguf_bytes

ARCHIVES = Path(__file__).resolve().parent.parent / "checkpoints"
_SIZES = {"BF16": 2, "F16": 2, "F32": 4, "I32": 4, "U8": 1, "F8_E4M3": 1}


def names() -> list[str]:
    return sorted(p.name.removesuffix(".json.gz") for p in ARCHIVES.glob("*.json.gz"))


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(gzip.decompress((ARCHIVES / f"{name}.json.gz").read_bytes()))
    return doc


def _sparse(path: Path, head: bytes, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(head)
        f.truncate(max(size, len(head)))


def _safetensors_head(tensors: list[list[Any]]) -> tuple[bytes, int]:
    header: dict[str, object] = {}
    offset = 0
    for tensor_name, dtype, shape in tensors:
        n = _SIZES[dtype]
        for dim in shape:
            n *= dim
        header[tensor_name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, offset


def build(name: str, dest: Path) -> Path:
    """Write checkpoint `name` into `dest` (created); returns `dest`."""
    doc = load(name)
    dest.mkdir(parents=True, exist_ok=True)
    for file_name, value in doc["json"].items():
        (dest / file_name).write_text(json.dumps(value, indent=2))
    for file_name, tensors in doc["safetensors"].items():
        head, data = _safetensors_head(tensors)
        _sparse(dest / file_name, head, len(head) + data)
    for file_name, gguf in doc["gguf"].items():
        tensors = [(t[0], t[1], t[2]) for t in gguf["tensors"]]
        _sparse(dest / file_name, gguf_bytes(gguf["metadata"], tensors), gguf["size"])
    for file_name, size in doc["other"].items():
        _sparse(dest / file_name, b"", size)
    return dest
