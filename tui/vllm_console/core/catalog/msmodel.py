"""One model of the ModelScope cache: its files without the SDK's bookkeeping, and its markers.

`msdetail` walks a ModelScope model like a model folder (`walk_model` instead of
`folders.walk_folder`) and `finish` makes its entry, with what the SDK's markers say:

- the files: the markers (`.mdl`, `.msc`, `.mv`, and the `.corrupted` copies the SDK leaves of
  damaged ones) are the SDK's, not the model's, so they are neither listed nor sized (as the
  SDK's own `scan_cache_dir()` counts). A `FILE.incomplete` (the newest layout writes each
  download beside its target) is an unfinished download: counted, not listed or sized;
- a download in progress of the older layouts lies in `._____temp/ORG/NAME`: while that holds
  files the model is incomplete;
- `.mv` holds the revision (`Revision:REV,CreatedAt:...`); `.mdl` a pickled `{"id": ...}`. It
  is bytes on disk: it is never given to `pickle` (a stock unpickler runs what the file names;
  even one that refuses every class allocates the memo a file claims), but read by walking
  its opcodes, only those a dict of strings is made of, at most `MAX_MARKER_BYTES` of it, and
  only a dict with a string id is taken. The id the
  entry shows comes from the path; a `.mdl` naming another one is a note.
"""

from __future__ import annotations

import io
import os
import pickletools
from pathlib import Path

from vllm_console.core.catalog import mscache
from vllm_console.core.catalog.describe import Described, merged
from vllm_console.core.catalog.entry import ModelEntry, Revision
from vllm_console.core.catalog.folders import FolderWalk, walk_folder
from vllm_console.core.catalog.hfcache import Seen
from vllm_console.core.files import read_capped

MAX_MARKER_BYTES = 64 * 1024  # an id or a revision: tens of bytes; `.msc` lists every file
MAX_REVISION = 128
MAX_TEMP_FILES = 10_000  # files counted in a download in progress before giving up counting
INCOMPLETE = ".incomplete"
_BOOKKEEPING = frozenset({*mscache.MARKERS, *(m + ".corrupted" for m in mscache.MARKERS)})


# The pickle opcodes a `.mdl` is made of (a dict of strings, in any protocol), as
# `pickletools` names them; any other opcode and the marker is not read.
_STRINGS = frozenset({"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_SKIP = frozenset({"PROTO", "FRAME"})
_MARK = object()


def _plain_load(data: bytes) -> object:
    """A pickle of a dict of strings, loaded by walking its opcodes (`pickletools.genops`),
    never by `pickle`: no class is looked up, nothing is called, and the memo is a dict of
    what was put in it (the C unpickler sizes its memo by the index a file claims: one
    4-byte index is gigabytes). Raises ValueError for anything else."""
    stack: list[object] = []
    memo: dict[object, object] = {}
    for op, arg, _ in pickletools.genops(io.BytesIO(data)):
        name = op.name
        if name in _STRINGS:
            stack.append(arg)
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name == "MARK":
            stack.append(_MARK)
        elif name == "DICT":  # protocol 0: the pairs since the mark
            at = _last_mark(stack)
            items = stack[at:]
            del stack[at - 1 :]
            stack.append(dict(zip(items[::2], items[1::2], strict=True)))
        elif name in _PUTS or name == "MEMOIZE":
            memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
        elif name in _GETS:
            stack.append(memo[arg])
        elif name in ("SETITEM", "SETITEMS"):
            at = len(stack) - 2 if name == "SETITEM" else _last_mark(stack)
            items = stack[at:]
            del stack[at - (name == "SETITEMS") :]
            target = stack[-1]
            if type(target) is not dict or len(items) % 2:
                raise ValueError("not a dict of strings")
            target.update(zip(items[::2], items[1::2], strict=True))
        elif name == "STOP":
            return stack[-1]
        elif name not in _SKIP:
            raise ValueError(f"refused: {name}")
    raise ValueError("no STOP")


def _last_mark(stack: list[object]) -> int:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            return i + 1
    raise ValueError("no MARK")


def parse_mdl(data: bytes) -> str | None:
    """The model id a `.mdl` marker holds (`___` read as `.`, as the SDK does); None if it is
    not a pickled dict with a string `id` of the form ORG/NAME."""
    try:
        loaded = _plain_load(data)
    except Exception:  # a damaged or hostile pickle fails in many ways; it is only a marker
        return None
    found = loaded.get("id") if type(loaded) is dict else None
    if type(found) is not str or found.count("/") != 1 or not found.isprintable():
        return None
    org, name = found.split("/")
    if not org or not name or len(found) > 256:
        return None
    # The SDK's cache scan reads `___` as `.` in the whole id, the org's part too.
    return found.replace(mscache.DOT, ".")


def parse_mv(data: bytes) -> str | None:
    """The revision a `.mv` marker names: `Revision:REV,CreatedAt:...` (or REV alone, as the
    SDK writes a revision that is not a dict); None if there is none that can be shown."""
    text = data.decode("utf-8", errors="replace").strip()
    if "Revision:" in text:
        text = text.split("Revision:", 1)[1].split(",", 1)[0].strip()
    if not text or len(text) > MAX_REVISION or not text.isprintable() or "\ufffd" in text:
        return None
    return text


def _read_marker(folder: Path, name: str) -> bytes | None:
    try:
        return read_capped(folder / name, MAX_MARKER_BYTES)
    except OSError:
        return None


def walk_model(top: str, seen: Seen | None = None) -> FolderWalk:
    """`folders.walk_folder` of a ModelScope model without the SDK's bookkeeping, its
    `.incomplete` files counted (`seen`: as `walk_folder` fills it)."""
    walk = walk_folder(top, seen)
    kept: list[str] = []
    dropped = 0
    incomplete = walk.incomplete
    for name in walk.files:
        unfinished = name.endswith(INCOMPLETE)
        if unfinished or ("/" not in name and name in _BOOKKEEPING):
            incomplete += unfinished
            dropped += _size(os.path.join(top, name))
        else:
            kept.append(name)
    return FolderWalk(tuple(kept), walk.size_bytes - dropped, incomplete, walk.problems)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def waiting(path: str) -> list[str]:
    """The problem of a flat model with a download in progress in `._____temp` (read every
    time: it lies outside the model's folder, and the index does not look there)."""
    if mscache.is_repo_snapshot(path):
        return []
    count = 0
    stack = [mscache.temp_folder(path)]
    while stack and count < MAX_TEMP_FILES:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    else:
                        count += 1
        except OSError:
            continue
    return [f"download in progress ({count} files in {mscache.TEMP})"] if count else []


Markers = tuple[str | None, str | None]  # (the id `.mdl` names, the revision `.mv` names)


def read_markers(path: Path) -> Markers:
    """What a flat model's `.mdl` and `.mv` say; (None, None) for the newest layout."""
    if mscache.is_repo_snapshot(str(path)):
        return None, None
    raw = _read_marker(path, ".mdl")
    named = parse_mdl(raw) if raw is not None else None
    raw = _read_marker(path, ".mv")
    return named, parse_mv(raw) if raw is not None else None


def finish(
    entry: ModelEntry, walk: FolderWalk, described: Described, markers: Markers, later: list[str]
) -> ModelEntry:
    """The detailed entry: the walk's files and size, what the files say, the revisions, the
    problems (`later`: those found outside the walk) and what the markers say.

    A flat model has the one revision its `.mv` names (none without it); a repo of the newest
    layout every snapshot, the chosen one first. Only the chosen revision is sized.
    """
    problems: list[str] = []
    if walk.incomplete:
        problems.append(f"incomplete download ({walk.incomplete} .incomplete files)")
    chosen = walk.size_bytes, len(walk.files)
    named, revision = markers
    notes = (f"its .mdl marker names it {named}",) if named and named != entry.id else ()
    revisions: tuple[Revision, ...] = ()
    if mscache.is_repo_snapshot(str(entry.path)):
        snapshots = entry.path.parent
        names = sorted(n for n in mscache.snapshot_names(str(snapshots)) if n != entry.path.name)
        first = Revision.listed(entry.path.name, entry.path, (), *chosen)
        revisions = (first, *(Revision.listed(n, snapshots / n) for n in names))
    elif revision:
        revisions = (Revision.listed(revision, entry.path, (), *chosen),)
    problems += (*walk.problems, *later)
    return merged(entry, described, walk.size_bytes, walk.files, problems, revisions, notes=notes)
