"""The model catalog: every model on disk, from the Hugging Face and ModelScope caches and the
model folders.

Two steps, so the UI can show names at once and fill in the rest live:

- `list_models` names the entries (ids, paths, the revision each cache repo stands for) from
  folder listings and `refs/main`, without reading any size or model file;
- `detail` reads one entry's config.json, weight headers and sizes, and lists its problems.

`scan` does both for every entry; `iter_detailed` yields detailed entries as they finish.
For a cache repo `detail` sizes the repo by its blobs and reads only the chosen snapshot's
links; `walk_exact` (the details pane, one model at a time) resolves every revision's links
like `huggingface_hub.scan_cache_dir()` and sizes each revision.
Nothing here raises for a broken model: problems are strings on the entry, and folders that
cannot be read are warnings on the `ScanResult`. Missing folders are skipped silently.
With `index_path`, `scan` and `iter_detailed` reuse what the last complete scan (of any
process) saved there for entries whose files have not changed (see `catalog_index`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from vllm_console import compat
from vllm_console.core.catalog import folders, hfcache, hfwalk, mscache, msdetail, msmodel, quants
from vllm_console.core.catalog.describe import (
    Described,
    decode,
    describe_dir,
    describe_gguf,
    encode,
    merged,
)
from vllm_console.core.catalog.entry import Format, ModelEntry, Source, format_bytes
from vllm_console.core.catalog.index import (
    CatalogIndex,
    file_stamps,
    folder_stamps,
    refs_with_layout,
)
from vllm_console.core.catalog.readers import safetensors as weights
from vllm_console.core.catalog.readers.weightfiles import INDEX_NAME, MISTRAL_INDEX

_log = logging.getLogger(__name__)

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


_SOURCE_RANK = {Source.HF_CACHE: 0, Source.MODELSCOPE: 1, Source.FOLDER: 2}


def _sort_key(entry: ModelEntry) -> tuple[str, int, str]:
    return entry.id.lower(), _SOURCE_RANK[entry.source], str(entry.path)


def list_models(
    hf_cache: Path, model_dirs: Sequence[Path], ms_cache: Path | None = None
) -> ScanResult:
    """Names only: ids, paths and the chosen revisions; `detailed` is False and no model file
    is read. A cache repo's other revisions come with `detail` (see `hfcache.list_cache`).
    `ms_cache`: the ModelScope cache's root, if it is to be listed (`mscache.list_cache`)."""
    with compat.gc_paused():
        entries, warnings = hfcache.list_cache(hf_cache)
        entries = quants.expand_cache(entries)  # a GGUF repo: one entry per quantization
        looked_in = [hf_cache]
        if ms_cache is not None and ms_cache != hf_cache:
            found, problems = mscache.list_cache(ms_cache)
            entries += found
            warnings += problems
            looked_in.append(ms_cache)
        for folder in model_dirs:
            if folder in looked_in:
                continue
            looked_in.append(folder)
            found, problems = folders.list_folder(folder)
            entries += found
            warnings += problems
        entries.sort(key=_sort_key)
    return ScanResult(tuple(entries), tuple(warnings), tuple(looked_in))


def scan(
    hf_cache: Path,
    model_dirs: Sequence[Path],
    workers: int = 1,
    *,
    index_path: Path | None = None,
    ms_cache: Path | None = None,
) -> ScanResult:
    """`list_models` plus `detail` of every entry, in the same order (see `iter_detailed`)."""
    with compat.gc_paused():
        listed = list_models(hf_cache, model_dirs, ms_cache)
        slots: list[tuple[ModelEntry, ...]] = [(entry,) for entry in listed.entries]
        for i, made in _detailed(listed.entries, workers, index_path):
            slots[i] = made
        entries = [entry for made in slots for entry in made]
        if len(entries) != len(slots):  # a repo became its quantizations
            entries.sort(key=_sort_key)
        return dataclasses.replace(listed, entries=tuple(entries))


def iter_detailed(
    entries: Iterable[ModelEntry], workers: int = 1, *, index_path: Path | None = None
) -> Iterator[ModelEntry]:
    """Detailed entries in the order they finish (for filling a list in live). A cache repo
    that holds several GGUF quantizations comes as its quantizations (`quants.split_detailed`;
    each id `REPO:QUANT`, each path inside the repo's): they replace the repo's entry.

    One worker by default: on 2 cores, 2 or 4 threads were no faster (the time goes to Python
    code between short system calls, which holds the GIL) and would starve the UI thread.
    With `index_path` the entries the index knows come first, most of them without reading
    any file; the index is saved once every entry has been yielded (not if the caller stops
    early).
    """
    for _, made in _detailed(list(entries), workers, index_path):
        yield from made


def _detailed(
    entries: Sequence[ModelEntry], workers: int, index_path: Path | None
) -> Iterator[tuple[int, tuple[ModelEntry, ...]]]:
    index = CatalogIndex.load(index_path) if index_path is not None else None
    todo = list(enumerate(entries))
    if index is not None and len(index):
        todo.sort(key=lambda item: not index.knows(item[1]))  # stable: known ones first

    def one(item: tuple[int, ModelEntry]) -> tuple[int, tuple[ModelEntry, ...]]:
        with compat.gc_paused():
            return item[0], _detail_split(item[1], index)

    if workers <= 1:
        yield from map(one, todo)
    else:
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            for future in as_completed([pool.submit(one, item) for item in todo]):
                yield future.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    if index is not None and (problem := index.save()) is not None:
        _log.info("%s", problem)  # the index only saves time; the scan itself is complete


def detail(entry: ModelEntry) -> ModelEntry:
    """Full metadata, sizes and problems of one entry, as a new entry. Never raises.

    A cache repo's size is the sum of its blobs; only its chosen revision is sized (see
    `walk_exact` for every revision).
    """
    return _detail(entry, None)


def _detail_split(entry: ModelEntry, index: CatalogIndex | None) -> tuple[ModelEntry, ...]:
    """`_detail`, or the detailed quantizations a cache repo turns out to be."""
    done = _detail(entry, index)
    try:
        parts = quants.split_detailed(done)
    except Exception as exc:  # as in _detail: the repo stays one entry, with the reason
        return (_failed(done, exc),)
    if not parts:
        return (done,)
    # A download in progress outside the repo's folder (ModelScope's temp folder) is every
    # quantization's problem; what lies inside it, each one finds itself.
    later = tuple(msmodel.waiting(str(done.path))) if done.source is Source.MODELSCOPE else ()
    made = (_detail(part, index) for part in parts)
    return tuple(
        dataclasses.replace(part, problems=(*part.problems, *later)) if later else part
        for part in made
    )


def _detail(entry: ModelEntry, index: CatalogIndex | None) -> ModelEntry:
    try:
        if quants.is_quant_entry(entry):
            return _detail_gguf_file(entry, index)
        if entry.source is Source.HF_CACHE:
            return _scan_cache(entry, index)
        if entry.source is Source.MODELSCOPE:
            return msdetail.detail(entry, index)
        if entry.path.name.lower().endswith(".gguf"):
            return _detail_gguf_file(entry, index)
        return _detail_folder(entry, index)
    except Exception as exc:  # a bug or a surprise on disk must not stop the scan
        return _failed(entry, exc)


def walk_exact(entry: ModelEntry) -> ModelEntry:
    """`detail` plus every revision's links resolved, as `scan_cache_dir()` does. Never raises.

    For the details pane, in a worker: the result has `exact=True`, each revision's
    `size_bytes` and `nb_files`, broken links in any revision, `size_bytes` counting only what
    some revision references, and `unreferenced_bytes` (with a note when not 0) for the blobs
    no revision uses. Takes a listed or a detailed entry; folder entries and GGUF quantizations
    are already exact, so they are only detailed if they were not. A repo whose folders have
    not changed since its last walk in this process is not walked again.
    """
    if entry.source is not Source.HF_CACHE or quants.is_quant_entry(entry):
        return entry if entry.detailed else detail(entry)
    try:
        walk = hfwalk.walk_repo(entry)
        return _cache_entry(entry, walk, _describe_repo(entry, walk.files), exact=True)
    except Exception as exc:  # as in detail()
        return _failed(entry, exc)


def clear_memos() -> None:
    """Forget what this process remembers between scans (repo walks, safetensors headers)."""
    hfwalk.clear_memo()
    weights.clear_memo()


def _failed(entry: ModelEntry, exc: Exception) -> ModelEntry:
    problem = f"could not read: {type(exc).__name__}: {exc}"
    return dataclasses.replace(entry, detailed=True, problems=(*entry.problems, problem))


def _scan_cache(entry: ModelEntry, index: CatalogIndex | None) -> ModelEntry:
    """The complete scan of a cache repo, from the index if its folders have not changed."""
    hit = index.cached_repo(entry) if index is not None else None
    if hit is not None and (described := decode(hit[1])) is not None:
        return _cache_entry(entry, hfwalk.with_refs(entry, hit[0], hit[2]), described)
    seen: hfcache.Seen = []
    chosen = hfwalk.scan_chosen(entry, seen)  # stamps first, then every file read
    refs, layout = refs_with_layout(hfcache.repo_dir(entry) + "/refs", hfcache.main_of(entry))
    walk = hfwalk.with_refs(entry, chosen, refs)
    described = _describe_repo(entry, walk.files)
    if index is not None and (stamps := folder_stamps(seen)) is not None:
        index.remember_repo(entry, stamps, layout, chosen, encode(described))
    return _cache_entry(entry, walk, described)


def _describe_repo(entry: ModelEntry, files: Sequence[str]) -> Described:
    return describe_dir(entry, str(entry.path), files) if entry.revisions else Described()


def _cache_entry(
    entry: ModelEntry, walk: hfwalk.RepoWalk, described: Described, exact: bool = False
) -> ModelEntry:
    problems: list[str] = []
    if walk.incomplete:
        problems.append(f"incomplete download ({walk.incomplete} .incomplete blobs)")
    problems += walk.problems
    unreferenced = walk.unreferenced_bytes
    notes: tuple[str, ...] = (
        (f"{format_bytes(unreferenced)} in blobs that no revision uses",) if unreferenced else ()
    )
    notes += quants.unsplit_note(walk.files) if described.format is Format.GGUF else ()
    return merged(
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


def _remembered(
    entry: ModelEntry,
    index: CatalogIndex | None,
    folder: str,
    inputs: Sequence[str] | None,
    compute: Callable[[], Described],
    listing: Sequence[str],
) -> Described:
    """`compute()`, or what the index stored for the entry if the files it reads (`inputs`,
    in `folder`; None: do not index) have not changed, nor the model's files (`listing`).
    Stamps are taken before reading."""
    stamps = None
    if index is not None and inputs is not None:
        stamps = file_stamps(folder, inputs, listing)
    if index is None or stamps is None:
        return compute()
    cached = index.cached_files(entry, stamps)
    described = decode(cached) if cached is not None else None
    if described is None:
        described = compute()
        index.remember_files(entry, stamps, encode(described))
    return described


def _folder_inputs(files: Sequence[str]) -> list[str] | None:
    """The files `_describe` may read, or None if the walk stopped short of some of them."""
    if len(files) >= folders.MAX_FILES:
        return None
    read = ("config.json", INDEX_NAME, MISTRAL_INDEX)
    weights = (".safetensors", ".bin", ".pt")  # headers read or sizes taken
    top = [f for f in files if "/" not in f and (f in read or f.endswith(weights))]
    return top + [f for f in files if f.endswith((".gguf", ".GGUF"))]


def _detail_folder(entry: ModelEntry, index: CatalogIndex | None = None) -> ModelEntry:
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
    inputs = _folder_inputs(walk.files)
    files = walk.files
    described = _remembered(
        entry, index, top, inputs, lambda: describe_dir(entry, top, files), files
    )
    return merged(entry, described, walk.size_bytes, walk.files, problems)


def _detail_gguf_file(entry: ModelEntry, index: CatalogIndex | None = None) -> ModelEntry:
    """One GGUF quantization, in a model folder or a cache repo (`quants.detail_quant`)."""

    def describe(paths: Sequence[str]) -> Described:
        return _remembered(entry, index, "", paths, lambda: describe_gguf(entry.id, paths), paths)

    return quants.detail_quant(entry, describe)
