"""Model folders (`./models`, `~/models`, ...): which directories and files are models.

Directly in a model folder: a directory holding config.json or weights is a model
(`Org--Name` -> id `Org/Name`, `Name` -> `Name`); a directory without them is an org whose
model subdirectories get `Org/Name`; a `.gguf` file is a model of its own, and the shards of a
split GGUF (`x-00001-of-00003.gguf`) are one model. A directory holding only GGUF files gives
one model per GGUF file (its id, when it holds several, gets `/<file stem>` appended).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from vllm_console.core.catalog.entry import ModelEntry, Source
from vllm_console.core.catalog.readers.gguf import gguf_stem

NOT_WEIGHTS_BIN = ("training_args", "optimizer", "scheduler", "rng_state")
MAX_FILES = 2000
MAX_DEPTH = 6


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


def list_folder(folder: Path) -> tuple[list[ModelEntry], list[str]]:
    """Models directly in one model folder. Missing: nothing; unreadable: a warning."""
    try:
        with os.scandir(folder) as it:
            items = [(e.name, e.path, e.is_dir()) for e in it if not e.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return [], []
    except OSError as exc:
        return [], [f"unreadable folder: {folder}: {exc.strerror or exc}"]
    entries: list[ModelEntry] = []
    entries += _gguf_entries(folder, [n for n, _, is_dir in items if not is_dir], None)
    for name, path, is_dir in items:
        if is_dir:
            entries += _list_dir(folder, path, folder_id(name), org_level=True)
    return entries, []


def _list_dir(root: Path, path: str, dir_id: str, org_level: bool) -> list[ModelEntry]:
    try:
        with os.scandir(path) as it:
            items = [(e.name, e.path, e.is_dir()) for e in it]
    except OSError:
        # Unreadable: still an entry, so that detail() can say why.
        return [ModelEntry(dir_id, Path(path), Source.FOLDER, root)]
    files = [n for n, _, is_dir in items if not is_dir]
    if "config.json" in files or any(is_weight_name(n) and not n.endswith(".gguf") for n in files):
        return [ModelEntry(dir_id, Path(path), Source.FOLDER, root)]
    ggufs = _gguf_entries(root, files, (Path(path), dir_id))
    if ggufs or not org_level:
        return ggufs
    found: list[ModelEntry] = []
    for name, sub, is_dir in items:
        if is_dir and not name.startswith("."):
            found += _list_dir(root, sub, f"{dir_id}/{name}", org_level=False)
    return found


def _gguf_entries(root: Path, names: list[str], owner: tuple[Path, str] | None) -> list[ModelEntry]:
    """One entry per GGUF file or shard group. `owner`: the (dir, id) of a GGUF-only model dir."""
    groups: dict[str, str] = {}
    for name in sorted(names):
        if name.lower().endswith(".gguf"):
            groups.setdefault(gguf_stem(name), name)
    if owner is None:
        return [
            ModelEntry(stem, root / first, Source.FOLDER, root) for stem, first in groups.items()
        ]
    folder, dir_id = owner
    return [
        ModelEntry(
            dir_id if len(groups) == 1 else f"{dir_id}/{stem}", folder / first, Source.FOLDER, root
        )
        for stem, first in groups.items()
    ]


@dataclass(frozen=True)
class FolderWalk:
    """Files under a model directory, their size (each real file once), and problems."""

    files: tuple[str, ...]
    size_bytes: int
    incomplete: int
    problems: tuple[str, ...]


def walk_folder(top: str) -> FolderWalk:
    """Walk a model directory: follow links to files, count each (st_dev, st_ino) once.

    `.cache/huggingface/download/*.incomplete` (left by `hf download --local-dir`) counts as an
    unfinished download; the `.cache` files are not listed in `files`.
    """
    files: list[str] = []
    seen: set[tuple[int, int]] = set()
    problems: list[str] = []
    size = incomplete = 0
    stack = [(top, "", 0)]
    while stack:
        folder, rel, depth = stack.pop()
        try:
            with os.scandir(folder) as it:
                items = list(it)
        except OSError as exc:
            problems.append(f"unreadable folder: {rel or '.'}: {exc.strerror or exc}")
            continue
        for e in items:
            name = rel + e.name
            try:
                st = e.stat()
            except OSError:
                problems.append(f"broken link: {name}")
                continue
            if stat.S_ISDIR(st.st_mode):
                if depth < MAX_DEPTH and not e.is_symlink():
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
