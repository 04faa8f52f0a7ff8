"""GGUF quantizations as entries of their own, in the model caches and in model folders.

- `expand_cache` (the first list): a Hugging Face cache repo named like a GGUF repo (`gguf` in
  its name, as `ORG/NAME-GGUF` repos are) whose chosen snapshot holds GGUF files and no other
  weights becomes one entry per quantization (`ggufsets`), its path the quantization's first
  file. One scandir of the snapshot (and of its folders, where big quantizations keep their
  shards) for those repos only: the first list reads no other snapshot.
- `split_detailed` (the complete scan): any other cache repo, of either hub, whose detail
  finds several quantizations and no other weights is split the same way then, from the file
  list the detail already read (the first list showed it as one entry for that moment).
- `detail_quant` (the complete scan) describes one quantization: its header (the shards
  summed), its own size, and the repo's other files (tokenizer, config, README): listed as
  shared, not counted in its size, so that each quantization's size is what it loads.

Folders list their GGUF files themselves (`folders`); every source is detailed here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from vllm_console.compat import child_path
from vllm_console.core.catalog import folders
from vllm_console.core.catalog.describe import Described, shard_problems
from vllm_console.core.catalog.entry import Format, ModelEntry, Revision, Source, format_bytes
from vllm_console.core.catalog.ggufsets import is_gguf_name, quant_ids, quant_sets

MAX_NAMES = 2000  # files listed in one GGUF repo's snapshot (a real one has tens)
SHOWN_SHARED = 4


_CACHES = (Source.HF_CACHE, Source.MODELSCOPE)


def is_quant_entry(entry: ModelEntry) -> bool:
    """A cache entry that stands for one GGUF quantization (its path is the first file). A
    cache repo's own path is a snapshot or a model folder, never a file: only a folder of
    the oldest ModelScope layout (its name as on the hub) could end in `.gguf`."""
    if entry.source not in _CACHES or not is_gguf_name(entry.path.name):
        return False
    return entry.source is Source.HF_CACHE or not entry.path.is_dir()


def expand_cache(entries: list[ModelEntry]) -> list[ModelEntry]:
    """The listing with each GGUF repo's quantizations in place of the repo (see above)."""
    out: list[ModelEntry] = []
    for entry in entries:
        if entry.revisions and "gguf" in entry.id.lower():
            out += _split_repo(entry)
        else:
            out.append(entry)
    return out


def repo_names(folder: str) -> list[str]:
    """Files in a repo folder and in its folders one level down (relative, hidden ones left
    out), at most `MAX_NAMES`; [] when it cannot be read."""
    names: list[str] = []
    stack = [(folder, "")]
    while stack and len(names) < MAX_NAMES:
        path, rel = stack.pop()
        try:
            with os.scandir(path) as it:
                items = [(e.name, e.is_dir()) for e in it if not e.name.startswith(".")]
        except OSError:
            continue
        for name, is_dir in sorted(items):
            if is_dir:
                if not rel:
                    stack.append((f"{path}/{name}", f"{name}/"))
            elif len(names) < MAX_NAMES:
                names.append(rel + name)
    return names


def _split_repo(entry: ModelEntry) -> list[ModelEntry]:
    snapshot = entry.revisions[0].path
    return _quant_entries(entry, snapshot, repo_names(str(snapshot)), 1) or [entry]


def split_detailed(entry: ModelEntry) -> list[ModelEntry]:
    """The quantizations (listed, not yet detailed) a detailed cache repo is, when it holds
    several and no other weights; [] when it stays one entry. Its path is the folder they lie
    in (the chosen snapshot, or a ModelScope model's folder); its `files` are relative to it."""
    if entry.source not in _CACHES or is_quant_entry(entry) or entry.format is not Format.GGUF:
        return []
    return _quant_entries(entry, entry.path, entry.files, 2)


def _quant_entries(
    entry: ModelEntry, home: Path, names: Sequence[str], at_least: int
) -> list[ModelEntry]:
    """One listed entry per quantization among `names` (relative to `home`), if there are
    `at_least` of them and no weights of another format at the top; else []."""
    if any(folders.is_weight_name(n) and not is_gguf_name(n) for n in names if "/" not in n):
        return []  # safetensors beside the GGUF files: the repo is that model
    sets = quant_sets(names)
    if len(sets) < at_least:
        return []
    # The repo's revisions go with each quantization (`home_of` finds the repo by them), as
    # the first list names them: their sizes are the whole repo's, not a quantization's.
    revisions = tuple(Revision.listed(r.commit, r.path, r.refs) for r in entry.revisions)
    revisions = revisions or (Revision.listed(home.name, home),)
    made: list[ModelEntry] = []
    for set_id, qset in zip(quant_ids(entry.id, sets), sets, strict=True):
        path = home
        for part in qset.first.split("/"):
            path = child_path(path, part)
        made.append(ModelEntry.listed(set_id, path, entry.source, entry.root, revisions))
    return made


def unsplit_note(files: Sequence[str]) -> tuple[str, ...]:
    """What a cache repo shown as one entry says when it holds several quantizations (the
    details pane can show it before the complete scan has split it: `split_detailed`)."""
    sets = quant_sets(files)
    if len(sets) < 2:
        return ()
    names = ", ".join(s.quant or s.stem for s in sets[:8]) + (", …" if len(sets) > 8 else "")
    return (
        f"{len(sets)} GGUF quantizations ({names}), described by the first; "
        "name one as ORG/NAME:QUANT to resolve or serve it",
    )


def home_of(entry: ModelEntry) -> Path | None:
    """The repo or model folder a quantization belongs to; None for a lone file in a model
    folder (the files beside it are other models, not its own)."""
    if entry.source in _CACHES:
        return entry.revisions[0].path if entry.revisions else entry.path.parent
    return None if entry.path.parent == entry.root else entry.path.parent


def detail_quant(entry: ModelEntry, describe: Callable[[Sequence[str]], Described]) -> ModelEntry:
    """One quantization's header, size and problems; the repo's other files as shared.
    `describe(paths)` reads the headers (the catalog passes one that uses its index)."""
    paths = folders.gguf_group(entry.path)
    problems = shard_problems(paths)
    size = 0
    for path in paths:
        try:
            size += os.stat(path).st_size
        except OSError:
            problems.append(f"broken link: {os.path.basename(path)}")
    described = describe(paths)
    home = home_of(entry)
    own = [_relative(p, home) for p in paths]
    notes: list[str] = []
    files = list(own)
    if home is not None:
        shared, shared_size, broken, unfinished = _shared(home, own)
        files += shared
        problems += broken
        if entry.source is Source.HF_CACHE and (incomplete := _incomplete_blobs(home)):
            problems.append(f"incomplete download in this repo ({incomplete} .incomplete blobs)")
        if unfinished:  # a ModelScope download (or any other) writes FILE.incomplete beside
            problems.append(f"incomplete download in this repo ({unfinished} .incomplete files)")
        if shared:
            shown = ", ".join(shared[:SHOWN_SHARED]) + (", …" if len(shared) > SHOWN_SHARED else "")
            notes.append(
                f"{len(shared)} files of the repo ({format_bytes(shared_size)}) shared with "
                f"its other quantizations, not counted in this size: {shown}"
            )
    if len(paths) > 1:
        notes.append(f"split in {len(paths)} files: vLLM loads single-file GGUF only")
    return ModelEntry(
        id=entry.id,
        path=entry.path,
        source=entry.source,
        root=entry.root,
        revisions=entry.revisions,
        format=Format.GGUF,
        meta=described.meta,
        config=described.config,
        size_bytes=size,
        files=tuple(files),
        weight_files=tuple(own),  # this quantization's files: the other ones are other entries
        problems=(*problems, *described.problems),
        detailed=True,
        exact=True,
        notes=tuple(notes),
    )


def _relative(path: str, home: Path | None) -> str:
    if home is None:
        return os.path.basename(path)
    return os.path.relpath(path, home)


def _shared(home: Path, own: Sequence[str]) -> tuple[list[str], int, list[str], int]:
    """(the repo's files that are not GGUF, their size, broken links among them, how many
    `.incomplete` files of them or of `own` lie there: another quantization's unfinished
    download is that one's problem)."""
    shared: list[str] = []
    broken: list[str] = []
    size = unfinished = 0
    for name in repo_names(str(home)):
        if name.endswith(".incomplete"):
            done = name[: -len(".incomplete")]
            unfinished += not is_gguf_name(done) or done in own
            continue
        if is_gguf_name(name):
            continue
        try:
            size += os.stat(f"{home}/{name}").st_size
        except OSError:
            broken.append(f"broken link: {name}")
            continue
        shared.append(name)
    return shared, size, broken, unfinished


def _incomplete_blobs(snapshot: Path) -> int:
    """`.incomplete` blobs of the cache repo a snapshot belongs to (a download under way)."""
    try:
        with os.scandir(snapshot.parent.parent / "blobs") as it:
            return sum(e.name.endswith(".incomplete") for e in it)
    except OSError:
        return 0
