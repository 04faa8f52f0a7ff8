"""The model catalog: every model on disk, from the Hugging Face cache and the model folders.

Two steps, so the UI can show names at once and fill in the rest live:

- `list_models` names the entries (ids, paths, revisions) without reading any file or size;
- `detail` reads one entry's config.json, weight headers and sizes, and lists its problems.

`scan` does both for every entry; `iter_detailed` yields detailed entries as they finish.
For a cache repo `detail` sizes the repo by its blobs and reads only the chosen snapshot's
links; `walk_exact` (the details pane, one model at a time) resolves every revision's links
like `huggingface_hub.scan_cache_dir()` and sizes each revision.
Nothing here raises for a broken model: problems are strings on the entry, and folders that
cannot be read are warnings on the `ScanResult`. Missing folders are skipped silently.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from vllm_console.core import folders, hfcache, weights
from vllm_console.core.entry import Format, ModelEntry, Revision, Source, format_bytes
from vllm_console.core.gguf import GgufInfo, merge_shards, quant_from_name, read_gguf, shard_stem
from vllm_console.core.gguf import split_quant as split_gguf_quant
from vllm_console.core.metadata import ConfigInfo, config_info, load_json, quantization_from_name
from vllm_console.core.weights import ParamsResult, params_from_safetensors

__all__ = [
    "ScanResult",
    "clear_memos",
    "detail",
    "iter_detailed",
    "list_models",
    "scan",
    "walk_exact",
]


@dataclass(frozen=True)
class ScanResult:
    """Entries sorted by id, warnings about folders that could not be read, where we looked."""

    entries: tuple[ModelEntry, ...]
    warnings: tuple[str, ...]
    looked_in: tuple[Path, ...]


def _sort_key(entry: ModelEntry) -> tuple[str, int, str]:
    return entry.id.lower(), entry.source is not Source.HF_CACHE, str(entry.path)


def list_models(hf_cache: Path, model_dirs: Sequence[Path]) -> ScanResult:
    """Names only: ids, paths and revisions; `detailed` is False and no file is read."""
    entries, warnings = hfcache.list_cache(hf_cache)
    looked_in = [hf_cache]
    for folder in model_dirs:
        if folder in looked_in:
            continue
        looked_in.append(folder)
        found, problems = folders.list_folder(folder)
        entries += found
        warnings += problems
    entries.sort(key=_sort_key)
    return ScanResult(tuple(entries), tuple(warnings), tuple(looked_in))


def scan(hf_cache: Path, model_dirs: Sequence[Path], workers: int = 1) -> ScanResult:
    """`list_models` plus `detail` of every entry, in the same order (see `iter_detailed`)."""
    listed = list_models(hf_cache, model_dirs)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            detailed = tuple(pool.map(detail, listed.entries))
    else:
        detailed = tuple(detail(entry) for entry in listed.entries)
    return dataclasses.replace(listed, entries=detailed)


def iter_detailed(entries: Iterable[ModelEntry], workers: int = 1) -> Iterator[ModelEntry]:
    """Detailed entries in the order they finish (for filling a list in live).

    One worker by default: on 2 cores, 2 or 4 threads were no faster (the time goes to Python
    code between short system calls, which holds the GIL) and would starve the UI thread.
    """
    entries = list(entries)
    if workers <= 1:
        yield from map(detail, entries)
        return
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for future in as_completed([pool.submit(detail, e) for e in entries]):
            yield future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def detail(entry: ModelEntry) -> ModelEntry:
    """Full metadata, sizes and problems of one entry, as a new entry. Never raises.

    A cache repo's size is the sum of its blobs; only its chosen revision is sized (see
    `walk_exact` for every revision).
    """
    try:
        if entry.source is Source.HF_CACHE:
            return _detail_cache(entry, exact=False)
        if entry.path.name.lower().endswith(".gguf"):
            return _detail_gguf_file(entry)
        return _detail_folder(entry)
    except Exception as exc:  # a bug or a surprise on disk must not stop the scan
        return _failed(entry, exc)


def walk_exact(entry: ModelEntry) -> ModelEntry:
    """`detail` plus every revision's links resolved, as `scan_cache_dir()` does. Never raises.

    For the details pane, in a worker: the result has `exact=True`, each revision's
    `size_bytes` and `nb_files`, broken links in any revision, `size_bytes` counting only what
    some revision references, and `unreferenced_bytes` (with a note when not 0) for the blobs
    no revision uses. Takes a listed or a detailed entry; folder entries are already exact, so
    they are only detailed if they were not. A repo whose folders have not changed since its
    last walk in this process is not walked again.
    """
    if entry.source is not Source.HF_CACHE:
        return entry if entry.detailed else detail(entry)
    try:
        return _detail_cache(entry, exact=True)
    except Exception as exc:  # as in detail()
        return _failed(entry, exc)


def clear_memos() -> None:
    """Forget what this process remembers between scans (repo walks, safetensors headers)."""
    hfcache.clear_memo()
    weights.clear_memo()


def _failed(entry: ModelEntry, exc: Exception) -> ModelEntry:
    problem = f"could not read: {type(exc).__name__}: {exc}"
    return dataclasses.replace(entry, detailed=True, problems=(*entry.problems, problem))


@dataclass(frozen=True)
class _Described:
    """What a model's own files say: config.json, weight headers. Merged into the entry."""

    format: Format = Format.UNKNOWN
    architecture: str | None = None
    model_type: str | None = None
    params: int | None = None
    dtype: str | None = None
    quantization: str | None = None
    context_length: int | None = None
    num_layers: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    config: dict[str, object] = dataclasses.field(default_factory=dict)
    problems: tuple[str, ...] = ()


def _finish(
    entry: ModelEntry,
    d: _Described,
    size: int | None,
    files: Sequence[str],
    problems: list[str],
    revisions: tuple[Revision, ...] | None = None,
    *,
    exact: bool = True,
    unreferenced: int | None = None,
    notes: tuple[str, ...] = (),
) -> ModelEntry:
    return ModelEntry(
        id=entry.id,
        path=entry.path,
        source=entry.source,
        root=entry.root,
        revisions=entry.revisions if revisions is None else revisions,
        format=d.format,
        architecture=d.architecture,
        model_type=d.model_type,
        params=d.params,
        dtype=d.dtype,
        quantization=d.quantization,
        context_length=d.context_length,
        num_layers=d.num_layers,
        num_kv_heads=d.num_kv_heads,
        head_dim=d.head_dim,
        config=d.config,
        size_bytes=size,
        files=tuple(files),
        problems=(*problems, *d.problems),
        detailed=True,
        exact=exact,
        unreferenced_bytes=unreferenced,
        notes=notes,
    )


def _detail_cache(entry: ModelEntry, exact: bool) -> ModelEntry:
    walk = hfcache.walk_repo(entry) if exact else hfcache.scan_repo(entry)
    problems: list[str] = []
    if walk.incomplete:
        problems.append(f"incomplete download ({walk.incomplete} .incomplete blobs)")
    problems += walk.problems
    described = _describe(entry, str(entry.path), walk.files) if entry.revisions else _Described()
    unreferenced = walk.unreferenced_bytes
    notes = (
        (f"{format_bytes(unreferenced)} in blobs that no revision uses",) if unreferenced else ()
    )
    return _finish(
        entry,
        described,
        walk.size_bytes,
        walk.files,
        problems,
        walk.revisions,
        exact=exact,
        unreferenced=unreferenced,
        notes=notes,
    )


def _detail_folder(entry: ModelEntry) -> ModelEntry:
    top = str(entry.path)
    try:
        os.listdir(top)
    except OSError as exc:
        problem = f"unreadable folder: {exc.strerror or exc}"
        return dataclasses.replace(entry, detailed=True, problems=(problem,))
    walk = folders.walk_folder(top)
    problems: list[str] = []
    if walk.incomplete:
        problems.append(f"incomplete download ({walk.incomplete} .incomplete files)")
    problems += walk.problems
    described = _describe(entry, top, walk.files)
    return _finish(entry, described, walk.size_bytes, walk.files, problems)


def _detail_gguf_file(entry: ModelEntry) -> ModelEntry:
    paths = folders.gguf_group(entry.path)
    problems = _shard_problems(paths)
    size = 0
    for path in paths:
        try:
            size += os.stat(path).st_size
        except OSError:
            problems.append(f"broken link: {os.path.basename(path)}")
    described = _describe_gguf(entry.id, paths)
    names = [os.path.basename(p) for p in paths]
    return _finish(entry, described, size, names, problems)


def _shard_problems(paths: list[str]) -> list[str]:
    parts = [shard_stem(os.path.basename(p)) for p in paths]
    totals = {p[2] for p in parts if p is not None}
    if not totals:
        return []
    have = {p[1] for p in parts if p is not None}
    missing = sorted(set(range(1, max(totals) + 1)) - have)
    if missing:
        return [f"missing GGUF shards: {', '.join(map(str, missing))} of {max(totals)}"]
    return []


def _describe(entry: ModelEntry, folder: str, files: Sequence[str]) -> _Described:
    """What a model directory's config.json and weights say."""
    top = [f for f in files if "/" not in f]
    ggufs = sorted(f for f in files if f.endswith((".gguf", ".GGUF")))
    fmt = _format_of(top, ggufs)
    if fmt is Format.GGUF:
        return _describe_gguf(entry.id, _first_group(folder, ggufs))
    problems: list[str] = []
    config: dict[str, object] = {}
    info = ConfigInfo()
    if "config.json" not in top:
        problems.append("no config.json")
    else:
        loaded, why = load_json(os.path.join(folder, "config.json"))
        if loaded is None:
            problems.append(f"unreadable config.json: {why}")
        else:
            config, info = loaded, config_info(loaded)
    if fmt is Format.UNKNOWN:
        problems.append("no weights")
    params = ParamsResult(None, None)
    if fmt is Format.SAFETENSORS:
        params = params_from_safetensors(folder, top)
        problems += params.problems
    return _Described(
        format=fmt,
        architecture=info.architecture,
        model_type=info.model_type,
        params=params.params,
        dtype=info.dtype or params.dtype,
        quantization=info.quantization or quantization_from_name(entry.id),
        context_length=info.context_length,
        num_layers=info.num_layers,
        num_kv_heads=info.num_kv_heads,
        head_dim=info.head_dim,
        config=config,
        problems=tuple(problems),
    )


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


def _describe_gguf(entry_id: str, paths: Sequence[str]) -> _Described:
    infos: list[GgufInfo] = []
    problems: list[str] = []
    for path in paths:
        info, why = read_gguf(path)
        if info is None:
            problems.append(f"bad GGUF header: {os.path.basename(path)}: {why}")
        else:
            infos.append(info)
    quant = quant_from_name(os.path.basename(paths[0])) if paths else None
    if not infos:
        dtype, quantization = split_gguf_quant(quant)
        return _Described(
            Format.GGUF, dtype=dtype, quantization=quantization, problems=tuple(problems)
        )
    info = merge_shards(infos)
    dtype, quantization = split_gguf_quant(quant or info.file_type)
    return _Described(
        format=Format.GGUF,
        architecture=info.architecture,
        model_type=info.architecture,
        params=info.params or None,
        dtype=dtype,
        quantization=quantization or quantization_from_name(entry_id),
        context_length=info.arch_int("context_length"),
        num_layers=info.arch_int("block_count"),
        num_kv_heads=info.arch_int("attention.head_count_kv")
        or info.arch_int("attention.head_count"),
        head_dim=info.head_dim,
        config=dict(info.metadata),
        problems=tuple(problems),
    )
