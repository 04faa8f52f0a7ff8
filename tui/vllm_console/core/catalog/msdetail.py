"""The complete scan of one ModelScope model, remembered in the catalog index.

A ModelScope model is a folder the SDK writes by renames: the older SDKs move each finished
file in from `._____temp`, the newest renames `FILE.incomplete` to `FILE`, and `.msc` is
replaced whole. Each of these moves its folder's mtime, so, as for a Hugging Face cache repo
(see `catalog_index`), folders whose stamps have not changed hold the same file names, and
the walk (names, size, `.incomplete` count) is reused. The files the description reads
(config.json, the weights' headers) and the markers `.mdl` and `.mv` (which the SDK rewrites in
place) are stamped one by one, so an edit of any of them is seen. The known limit, as for the
cache's blobs: another file rewritten in place with a new size keeps its old size until its
folder changes. A model holding a link, a folder that cannot be read, or more files than a
walk lists, is not remembered. A download in progress in `._____temp` lies outside the model's
folder and is looked for every time.

The record: (`records.MODELSCOPE`, folder stamps, (names of the files read, their stamps),
(files, size, incomplete, problems) of the walk, `describe.encode` of what the files say,
`msmodel.Markers`), checked by `records.is_modelscope` before it is used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from vllm_console.core.catalog import msmodel, records
from vllm_console.core.catalog.describe import Described, decode, describe_dir, encode
from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.core.catalog.folders import MAX_FILES, FolderWalk
from vllm_console.core.catalog.hfcache import Seen
from vllm_console.core.catalog.index import CatalogIndex, file_stamps, folder_stamps, same_folders
from vllm_console.core.catalog.readers.safetensors import INDEX_NAME

_READ = ("config.json", INDEX_NAME)


def detail(entry: ModelEntry, index: CatalogIndex | None) -> ModelEntry:
    """The entry with its files, size, metadata, revisions and problems. Never raises for
    what is on disk (an unreadable folder is a problem on the entry)."""
    top = str(entry.path)
    later = msmodel.waiting(top)
    hit = _cached(entry, index, top) if index is not None else None
    if hit is not None:
        return msmodel.finish(entry, *hit, later)
    try:
        os.listdir(top)
    except OSError as exc:
        problem = f"unreadable folder: {exc.strerror or exc}"
        return msmodel.finish(entry, FolderWalk((), 0, 0, (problem,)), Described(), _NONE, [])
    seen: Seen = []
    walk = msmodel.walk_model(top, seen)
    described = describe_dir(entry, top, walk.files)
    markers = msmodel.read_markers(entry.path)
    if index is not None:
        _remember(entry, index, top, seen, walk, described, markers)
    return msmodel.finish(entry, walk, described, markers, later)


_NONE: msmodel.Markers = (None, None)


def inputs(top: str, files: Sequence[str]) -> list[str]:
    """The files `describe_dir` reads (config.json, the safetensors index and headers, GGUF
    files) and the markers the SDK rewrites in place, those of them that are there."""
    read = [f for f in files if f in _READ or (f.endswith(".safetensors") and "/" not in f)]
    read += [f for f in files if f.endswith((".gguf", ".GGUF"))]
    read += [m for m in (".mdl", ".mv") if os.path.lexists(os.path.join(top, m))]
    return read


def _remember(
    entry: ModelEntry,
    index: CatalogIndex,
    top: str,
    seen: Seen,
    walk: FolderWalk,
    described: Described,
    markers: msmodel.Markers,
) -> None:
    if walk.problems or len(walk.files) >= MAX_FILES:
        return
    folders = folder_stamps(seen)
    read = file_stamps(top, inputs(top, walk.files), ())
    if folders is None or read is None:
        return
    names = tuple(name for name, *_ in read[1])
    stored = (walk.files, walk.size_bytes, walk.incomplete, walk.problems)
    record = (records.MODELSCOPE, folders, (names, read[1]), stored, encode(described), markers)
    index.remember(entry, record)


def _cached(
    entry: ModelEntry, index: CatalogIndex, top: str
) -> tuple[FolderWalk, Described, msmodel.Markers] | None:
    """The stored walk, description and markers, if none of what they came from changed."""
    record = index.cached_record(entry, records.MODELSCOPE)
    if record is None or not records.is_modelscope(record):
        return None
    _, folders, (names, stamps), walk, raw, markers = record
    if not same_folders(top, folders):
        return None
    fresh = file_stamps(top, names, ())
    described = decode(raw)
    if fresh is None or fresh[1] != stamps or described is None:
        return None
    index.keep(entry, record)
    return FolderWalk(*walk), described, markers
