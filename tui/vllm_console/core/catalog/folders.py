"""Model folders (`./models`, `~/models`, ...): which directories and files are models.

Directly in a model folder: a directory holding config.json or weights is a model
(`Org--Name` -> id `Org/Name`, `Name` -> `Name`); a directory without them is an org whose
model subdirectories get `Org/Name`; a `.gguf` file is a model of its own, and the shards of a
split GGUF (`x-00001-of-00003.gguf`) are one model. A directory whose weights are GGUF files
only (a config.json or tokenizer beside them or not) gives one model per quantization
(`ggufsets`: its id, when it holds several, gets `:QUANT` appended, e.g. `Org/Name:Q4_K_M`).

A model folder may be set to `/` or to a huge tree, so every walk is bounded: the listing
goes two folders down (ORG/NAME) and lists at most `MAX_LISTED` folders per model folder; a
model's own walk goes `MAX_DEPTH` folders down and visits at most `MAX_WALKED` entries; links
to folders are never followed inside a model (no loops); and `/proc`, `/sys` and `/dev`
(`SYSTEM_FOLDERS`: endless, or with side effects) are never entered.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from vllm_console.core.catalog.entry import ModelEntry, Source
from vllm_console.core.catalog.ggufsets import quant_ids, quant_sets
from vllm_console.core.catalog.readers.gguf import gguf_stem

NOT_WEIGHTS_BIN = ("training_args", "optimizer", "scheduler", "rng_state")
MAX_FILES = 2000
# Folders below the model's own: NAME/.cache/huggingface/download holds a local-dir
# download's `.incomplete` files, three down; one more for weights kept in subfolders.
MAX_DEPTH = 4
MAX_WALKED = 100_000  # entries visited in one model (a real one has tens to thousands)
MAX_LISTED = 4000  # folders listed in one model folder, orgs and their models together
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")


def is_system_path(real: str) -> bool:
    """Whether a resolved path is, or is inside, one of `SYSTEM_FOLDERS`."""
    return any(real == top or real.startswith(top + "/") for top in SYSTEM_FOLDERS)


def _real_child(real_parent: str, name: str, path: str, is_link: bool) -> str:
    """The resolved path of a folder's entry; only a link needs resolving."""
    if is_link:
        return os.path.realpath(path)
    return real_parent.rstrip("/") + "/" + name


def is_weight_name(name: str) -> bool:
    if name.endswith((".safetensors", ".gguf")):
        return True
    return name.endswith(".bin") and not name.startswith(NOT_WEIGHTS_BIN)


def is_bin_weight(name: str) -> bool:
    return name.endswith(".bin") and not name.startswith(NOT_WEIGHTS_BIN)


def folder_id(name: str) -> str:
    """`Qwen--Qwen2.5-7B` (the old download script's layout) -> `Qwen/Qwen2.5-7B`."""
    org, sep, rest = name.partition("--")
    return f"{org}/{rest}" if sep and org and rest else name


_Item = tuple[str, str, bool, bool]  # name, path, is a folder (links followed), is a link


def _items(path: str | Path) -> list[_Item]:
    with os.scandir(path) as it:
        return [(e.name, e.path, e.is_dir(), e.is_symlink()) for e in it]


def list_folder(folder: Path) -> tuple[list[ModelEntry], list[str]]:
    """Models directly in one model folder. Missing: nothing; unreadable, a system folder or
    too many folders to list: a warning.

    Breadth first: every folder in the model folder is looked at before any org's models, so
    a huge org folder cannot hide a model beside it.
    """
    real = os.path.realpath(folder)
    if is_system_path(real):
        return [], [f"not a model folder: {folder} (a system folder)"]
    try:
        items = [item for item in _items(folder) if not item[0].startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return [], []
    except OSError as exc:
        return [], [f"unreadable folder: {folder}: {exc.strerror or exc}"]
    entries: list[ModelEntry] = []
    entries += _gguf_entries(folder, [n for n, _, is_dir, _ in items if not is_dir], None)
    orgs = _folders(real, items, "")
    models: list[tuple[str, str, str]] = []
    for listed, (path, real_dir, dir_id) in enumerate(orgs):
        if listed >= MAX_LISTED:
            return entries, [_stopped(folder)]
        found, children = _look(folder, path, dir_id)
        entries += found
        if children is not None:
            models += _folders(real_dir, children, dir_id + "/")
    for listed, (path, _, dir_id) in enumerate(models, start=len(orgs)):
        if listed >= MAX_LISTED:
            return entries, [_stopped(folder)]
        entries += _look(folder, path, dir_id)[0]
    return entries, []


def _stopped(folder: Path) -> str:
    return f"model folder {folder}: stopped after listing {MAX_LISTED} folders"


def _folders(real: str, items: list[_Item], prefix: str) -> list[tuple[str, str, str]]:
    """(path, resolved path, id) of the folders among `items` (of the folder resolved at
    `real`), sorted, hidden and system ones left out."""
    found: list[tuple[str, str, str]] = []
    for name, path, is_dir, is_link in sorted(items):
        if is_dir and not name.startswith("."):
            real_dir = _real_child(real, name, path, is_link)
            if not is_system_path(real_dir):
                found.append((path, real_dir, prefix + name if prefix else folder_id(name)))
    return found


def _look(root: Path, path: str, dir_id: str) -> tuple[list[ModelEntry], list[_Item] | None]:
    """(the models one folder of a model folder is, or holds as GGUF files; its items if it
    is none of that, so that its folders may be models)."""
    try:
        items = _items(path)
    except OSError:
        # Unreadable: still an entry, so that detail() can say why.
        return [ModelEntry(dir_id, Path(path), Source.FOLDER, root)], None
    files = [n for n, _, is_dir, _ in items if not is_dir]
    if any(is_weight_name(n) and not n.endswith(".gguf") for n in files):
        return [ModelEntry(dir_id, Path(path), Source.FOLDER, root)], None
    ggufs = _gguf_entries(root, files, (Path(path), dir_id))
    if ggufs:
        return ggufs, None
    if "config.json" in files:
        return [ModelEntry(dir_id, Path(path), Source.FOLDER, root)], None
    return [], items


def _gguf_entries(root: Path, names: list[str], owner: tuple[Path, str] | None) -> list[ModelEntry]:
    """One entry per GGUF file or shard group. `owner`: the (dir, id) of a GGUF-only model dir."""
    if owner is None:
        groups: dict[str, str] = {}
        for name in sorted(names):
            if name.lower().endswith(".gguf"):
                groups.setdefault(gguf_stem(name), name)
        return [
            ModelEntry(stem, root / first, Source.FOLDER, root) for stem, first in groups.items()
        ]
    folder, dir_id = owner
    sets = quant_sets(names)
    return [
        ModelEntry(set_id, folder / qset.first, Source.FOLDER, root)
        for set_id, qset in zip(quant_ids(dir_id, sets), sets, strict=True)
    ]


@dataclass(frozen=True)
class FolderWalk:
    """Files under a model directory, their size (each real file once), and problems."""

    files: tuple[str, ...]
    size_bytes: int
    incomplete: int
    problems: tuple[str, ...]


def walk_folder(
    top: str, stamps: list[tuple[str, os.stat_result | None]] | None = None
) -> FolderWalk:
    """Walk a model directory: follow links to files, count each (st_dev, st_ino) once.

    `.cache/huggingface/download/*.incomplete` (left by `hf download --local-dir`) counts as an
    unfinished download; the `.cache` files are not listed in `files`. `stamps` gets each folder
    (relative, "" for `top`) with its stat taken before it is listed, None if it could not be
    read, and ("", None) if a file is a link (what it points to may change unseen).
    """
    files: list[str] = []
    seen: set[tuple[int, int]] = set()
    problems: list[str] = []
    size = incomplete = 0
    real_top = os.path.realpath(top)
    left = MAX_WALKED
    stack = [(top, "", 0)]
    while stack:
        folder, rel, depth = stack.pop()
        try:
            if stamps is not None:
                stamps.append((rel.rstrip("/"), os.stat(folder)))
            with os.scandir(folder) as it:
                items = list(it)
        except OSError as exc:
            problems.append(f"unreadable folder: {rel or '.'}: {exc.strerror or exc}")
            if stamps is not None:
                stamps.append(("", None))
            continue
        left -= len(items)
        if left < 0:
            problems.append(f"more than {MAX_WALKED} files: only some are counted")
            break
        for e in items:
            name = rel + e.name
            try:
                st = e.stat()
            except OSError:
                problems.append(f"broken link: {name}")
                continue
            if stamps is not None and e.is_symlink():
                stamps.append(("", None))
            if stat.S_ISDIR(st.st_mode):
                # links to folders are not followed (loops); below `top` no path is a link
                inside = f"{real_top}/{name}".replace("//", "/")
                if depth < MAX_DEPTH and not e.is_symlink() and not is_system_path(inside):
                    stack.append((e.path, name + "/", depth + 1))
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                size += st.st_size
            if name.startswith(".cache/"):
                incomplete += name.endswith(".incomplete")
            elif len(files) < MAX_FILES:
                files.append(name)
    return FolderWalk(tuple(sorted(files)), size, incomplete, tuple(problems))


def gguf_group(path: Path) -> list[str]:
    """The files of the GGUF model `path` names: itself, or all shards of its split."""
    stem = gguf_stem(path.name)
    if stem == path.name[: -len(".gguf")]:
        return [str(path)]
    try:
        with os.scandir(path.parent) as it:
            names = sorted(e.name for e in it if e.name.endswith(".gguf"))
    except OSError:
        return [str(path)]
    return [str(path.parent / n) for n in names if gguf_stem(n) == stem and n != stem + ".gguf"]
