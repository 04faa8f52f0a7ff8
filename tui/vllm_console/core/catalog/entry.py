"""The catalog's record of one model: what it is, where it lies, and what is wrong with it."""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from pathlib import Path

from vllm_console import compat
from vllm_console.core.catalog.meta import NO_META, ModelMeta


class Source(StrEnum):
    HF_CACHE = "hf-cache"
    MODELSCOPE = "modelscope"
    FOLDER = "folder"


class Format(StrEnum):
    SAFETENSORS = "safetensors"
    BIN = "bin"
    GGUF = "gguf"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Revision:
    """One snapshot of a cache repo: its commit and the refs (branches, PRs) pointing at it."""

    commit: str
    path: Path
    refs: tuple[str, ...] = ()
    size_bytes: int | None = None
    nb_files: int | None = None

    @classmethod
    def listed(
        cls,
        commit: str,
        path: Path,
        refs: tuple[str, ...] = (),
        size_bytes: int | None = None,
        nb_files: int | None = None,
    ) -> Revision:
        """`Revision(commit, path, refs, size_bytes, nb_files)` in a third of the time: every
        field set straight into `__dict__` (see `_entry_defaults`; a test compares the two)."""
        made, fields_ = compat.bare_instance(cls)
        fields_["commit"] = commit
        fields_["path"] = path
        fields_["refs"] = refs
        fields_["size_bytes"] = size_bytes
        fields_["nb_files"] = nb_files
        return made


@dataclass(frozen=True)
class ModelEntry:
    """One model found on disk.

    The fast listing fills id, path, source, root and revisions; `detailed` is False then and
    `meta` is empty (every field None). The full scan returns a new entry with `detailed=True`
    and `meta` what the model's own files say (`ModelMeta`).
    Problems are collected as strings, never raised: a broken folder is still an entry.

    For a cache repo the full scan's `size_bytes` is the sum of its blobs, and only the chosen
    revision has a size and file count. `catalog.walk_exact` returns the entry with `exact=True`:
    every revision sized, `size_bytes` what the revisions reference (as `scan_cache_dir()`
    counts it), `unreferenced_bytes` the rest of the blobs, explained in `notes`. Notes are
    facts worth showing that do not make the model incomplete. Folder entries are exact once
    detailed.

    `weight_files` are the files vLLM loads (the parameters and the fit count only these);
    `ignored_files` the other weight-like files, each with the reason (a duplicate such as
    `consolidated.safetensors`, a format vLLM does not pick): still on disk, in `size_bytes`.
    """

    id: str
    path: Path
    source: Source
    root: Path
    revisions: tuple[Revision, ...] = ()
    format: Format = Format.UNKNOWN
    meta: ModelMeta = NO_META
    size_bytes: int | None = None
    files: tuple[str, ...] = ()
    weight_files: tuple[str, ...] = ()
    ignored_files: tuple[tuple[str, str], ...] = ()
    problems: tuple[str, ...] = ()
    detailed: bool = False
    config: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
    exact: bool = False
    unreferenced_bytes: int | None = None
    notes: tuple[str, ...] = ()

    @classmethod
    def listed(
        cls, id: str, path: Path, source: Source, root: Path, revisions: tuple[Revision, ...] = ()
    ) -> ModelEntry:
        """`ModelEntry(id, path, source, root, revisions)` in a fifth of the time
        (see `_entry_defaults`)."""
        made, fields_ = compat.bare_instance(cls)
        fields_.update(_ENTRY_DEFAULTS)
        fields_["config"] = {}
        fields_["id"] = id
        fields_["path"] = path
        fields_["source"] = source
        fields_["root"] = root
        fields_["revisions"] = revisions
        return made

    def with_revisions(self, revisions: tuple[Revision, ...]) -> ModelEntry:
        """`dataclasses.replace(self, revisions=revisions)` in a tenth of the time."""
        made, fields_ = compat.bare_instance(ModelEntry)
        fields_.update(self.__dict__)
        fields_["revisions"] = revisions
        return made

    @property
    def complete(self) -> bool:
        return self.detailed and not self.problems

    @property
    def key(self) -> str:
        """Unique within one scan: the same id may live in the cache and in a folder."""
        return f"{self.source}:{self.path}"

    @property
    def found_how(self) -> str:
        if self.source is Source.HF_CACHE:
            return f"Hugging Face cache at {self.root}"
        if self.source is Source.MODELSCOPE:
            return f"ModelScope cache at {self.root}"
        return f"model folder {self.root}"

    def to_json(self) -> dict[str, object]:
        meta = self.meta
        return {
            "id": self.id,
            "path": str(self.path),
            "source": str(self.source),
            "root": str(self.root),
            "format": str(self.format),
            "architecture": meta.architecture,
            "model_type": meta.model_type,
            "params": meta.params,
            "dtype": meta.dtype,
            "quantization": meta.quantization,
            "context_length": meta.context_length,
            "size_bytes": self.size_bytes,
            "stored_bytes": meta.stored_bytes,
            "storage": meta.storage,
            "weight_files": list(self.weight_files),
            "ignored_files": [{"file": name, "why": why} for name, why in self.ignored_files],
            "complete": self.complete,
            "problems": list(self.problems),
            "notes": list(self.notes),
            "revisions": [
                {"commit": rev.commit, "refs": list(rev.refs), "size_bytes": rev.size_bytes}
                for rev in self.revisions
            ],
        }

    def params_text(self) -> str:
        return format_params(self.meta.params)

    def size_text(self) -> str:
        return format_bytes(self.size_bytes)

    def context_text(self) -> str:
        return format_tokens(self.meta.context_length)

    def dtype_text(self) -> str:
        meta = self.meta
        if meta.quantization:
            return meta.quantization
        return meta.dtype or "?"

    def status_text(self) -> str:
        if not self.detailed:
            return "scanning"
        if self.problems:
            return self.problems[0]
        return "ok"


# The `listed` constructors skip the frozen dataclasses' `__init__`, which sets every field
# through `object.__setattr__` (3-5 times slower; a listing makes entries by the thousand):
# they fill the `__dict__` of a `compat.bare_instance`. `Revision.listed` sets all five
# fields; `ModelEntry.listed` starts from every field's default, then sets the values given.
# Only `ModelEntry.config` has a factory (a fresh dict each time); a new one would need the
# same care, hence the check.
def _entry_defaults() -> dict[str, object]:
    defaults = {f.name: f.default for f in fields(ModelEntry) if f.default is not MISSING}
    factories = {f.name for f in fields(ModelEntry) if f.default_factory is not MISSING}
    if factories != {"config"}:
        raise TypeError(f"ModelEntry.listed does not make {sorted(factories)}")
    return defaults


_ENTRY_DEFAULTS = _entry_defaults()


# What a figure too large, negative or not a number shows (the readers bound what they read,
# so only a caller's own arithmetic gets here; a display helper never raises).
UNKNOWN_FIGURE = "?"


def _finite(n: float) -> float | None:
    """`n` as a float if it is finite and fits one (a huge int does not: OverflowError)."""
    try:
        value = float(n)
    except (OverflowError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def format_params(n: float | None) -> str:
    if n is None:
        return "?"
    value = _finite(n)
    if value is None or value < 0 or value >= 1e15:
        return UNKNOWN_FIGURE
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            value /= scale
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return str(n) if isinstance(n, int) else f"{value:.0f}"


def format_bytes(n: float | None) -> str:
    if n is None:
        return "…"
    size = _finite(n)
    if size is None or abs(size) >= 1024**5 * 1000:  # past 1000 PiB: no disk holds that
        return UNKNOWN_FIGURE
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_tokens(n: float | None) -> str:
    if n is None:
        return "?"
    value = _finite(n)
    if value is None or value < 0 or value >= 1e12:
        return UNKNOWN_FIGURE
    if not isinstance(n, int):
        n = int(value)
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}K"
    if n >= 1000:
        return f"{n / 1000:.0f}K"
    return str(n)
