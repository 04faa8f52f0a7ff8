"""The Hugging Face hub cache's layout: its model repos, their refs, the snapshot each stands for.

- `list_cache` (the first list) names the `models--ORG--NAME` repos and the snapshot each
  stands for: per repo one read of `refs/main` and one stat of the snapshot it names; only a
  repo without a usable `refs/main` has `snapshots/` listed (and its snapshots stat'ed if there
  are several). The complete scan and the exact walk add the other snapshots;
- `choose_snapshot` is the rule for which snapshot a repo stands for (the one `refs/main` names,
  else the most recently modified). `resolve` uses it, and the listing follows the same rule,
  so a name resolves to the snapshot the catalog lists;
- `read_refs` reads every ref;
- `stamp_of` is the rule for when a folder's stat can vouch for what was read in it.

Reading sizes, files and links (the catalog's complete scan, the exact walk) is `hfwalk`.

Hot loops use plain strings and `os.scandir`, not `Path`: a listing of 1,000 repos is a few
thousand short system calls, and per-item Python overhead is what the time goes to. A `Path` is
built only for what an entry keeps (the repo and its snapshots), as a child of the cache's own
`Path` without parsing anything again (`compat.child_path`), and entries and revisions are
made by their `listed` constructors, which skip the frozen dataclasses' slower `__init__`.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from vllm_console.compat import child_path
from vllm_console.core.catalog.entry import ModelEntry, Revision, Source
from vllm_console.core.files import read_head

REPO_PREFIX = "models--"
IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
RACY_NS = 2_000_000_000  # a folder changed less than 2 s ago is not remembered

# (folder, its stat before it was read); None: cannot be vouched for (unreadable, links out)
Seen = list[tuple[str, os.stat_result | None]]
Stamp = tuple[int, int, int]  # (inode, mtime_ns, ctime_ns): see `stamp_of`
FileStamp = tuple[int, int, int, int]  # (inode, size, mtime_ns, ctime_ns): see `file_stamp`


class SnapshotChoice(NamedTuple):
    """Which snapshot of a cache repo stands for it, and what the choice was made from."""

    chosen: str | None  # a snapshot folder's name; None: the repo has no snapshot
    main: str | None  # the commit `refs/main` names; None: there is no `refs/main`
    snapshots: tuple[str, ...]  # every snapshot folder, in directory order

    def why(self) -> str:
        """How the choice was made, e.g. 'refs/main -> 0123456789ab'."""
        if self.chosen is None:
            return "no snapshots"
        if self.chosen == self.main:
            return f"refs/main -> {self.chosen[:12]}"
        lead = "refs/main names no snapshot here" if self.main else "no refs/main"
        return f"{lead}; newest snapshot {self.chosen[:12]}"


def repo_dir(entry: ModelEntry) -> str:
    return os.path.join(str(entry.root), REPO_PREFIX + entry.id.replace("/", "--"))


def main_of(entry: ModelEntry) -> str | None:
    """The commit `refs/main` named when the entry was listed (None: not there or elsewhere)."""
    first = entry.revisions[0] if entry.revisions else None
    return first.commit if first and "main" in first.refs else None


def list_cache(hf_cache: Path) -> tuple[list[ModelEntry], list[str]]:
    """The cache's model repos and the snapshot each stands for. A missing cache is no cache;
    unreadable, a warning.

    This is the first list, so it reads as little as the choice allows: `refs/main`, and a
    stat of the snapshot it names. When that snapshot is there it is the choice, and the entry
    has that one revision; the repo's other snapshots are listed by the complete scan
    (`hfwalk.scan_chosen`) and the exact walk (`with_all_revisions`). Otherwise `snapshots/`
    is listed here (the newest is chosen) and the entry has every revision. `read_refs` reads
    every ref.
    """
    root = str(hf_cache)
    try:
        with os.scandir(root) as it:
            repos = [(e.name, e.path) for e in it if e.name.startswith(REPO_PREFIX) and e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return [], []
    except OSError as exc:
        return [], [f"unreadable folder: {root}: {exc.strerror or exc}"]
    return [_list_repo(hf_cache, name, path) for name, path in repos], []


def _list_repo(hf_cache: Path, name: str, path: str) -> ModelEntry:
    repo_id = name[len(REPO_PREFIX) :].replace("--", "/")
    repo = child_path(hf_cache, name)  # `path` as a Path, without parsing `path` again
    main = read_small(path + "/refs/main")
    if main and _is_snapshot(path, main):
        snapshot = child_path(child_path(repo, "snapshots"), main)
        revision = Revision.listed(main, snapshot, _MAIN)
        return ModelEntry.listed(repo_id, snapshot, Source.HF_CACHE, hf_cache, (revision,))
    snapshots = snapshot_names(path + "/snapshots")
    chosen = _pick(path, main, snapshots)
    if chosen is None:
        return ModelEntry.listed(repo_id, repo, Source.HF_CACHE, hf_cache)
    revisions = _revisions(child_path(repo, "snapshots"), chosen, snapshots, main)
    return ModelEntry.listed(repo_id, revisions[0].path, Source.HF_CACHE, hf_cache, revisions)


def _is_snapshot(repo: str, commit: str) -> bool:
    """Whether `snapshots/<commit>` is a folder (or a link to one), as `snapshot_names` sees."""
    if "/" in commit or commit in (".", ".."):
        return False
    try:
        return stat.S_ISDIR(os.stat(f"{repo}/snapshots/{commit}").st_mode)
    except (OSError, ValueError):  # ValueError: a NUL in a damaged ref
        return False


def _revisions(
    base: Path, chosen: str, snapshots: Iterable[str], main: str | None
) -> tuple[Revision, ...]:
    """The chosen snapshot's revision, then the others sorted by commit (`base`: the
    `snapshots` folder)."""
    revisions = [Revision.listed(chosen, child_path(base, chosen), _MAIN if chosen == main else ())]
    revisions += [
        Revision.listed(c, child_path(base, c), _MAIN if c == main else ())
        for c in sorted(snapshots)
        if c != chosen
    ]
    return tuple(revisions)


def with_all_revisions(entry: ModelEntry) -> ModelEntry:
    """A listed cache entry with every snapshot of its repo as a revision (the first list may
    name only the chosen one): the chosen revision first, as listed, then the others as
    `snapshots/` holds them now, sorted. An entry without revisions (no snapshot when it was
    listed) is returned as it is, and so is one whose revisions are already those."""
    if not entry.revisions:
        return entry
    first = entry.revisions[0]
    others = sorted(snapshot_names(repo_dir(entry) + "/snapshots"))
    if first.commit in others:
        others.remove(first.commit)
    if len(others) == len(entry.revisions) - 1 and all(
        r.commit == c for r, c in zip(entry.revisions[1:], others, strict=True)
    ):
        return entry
    base = first.path.parent
    return entry.with_revisions((first, *[Revision.listed(c, child_path(base, c)) for c in others]))


_MAIN = ("main",)


def choose_snapshot(repo: str) -> SnapshotChoice:
    """The snapshot `refs/main` names, else the most recently modified one (`repo`: the
    `models--ORG--NAME` folder). One read of `refs/main` and one scandir of `snapshots/`; a
    stat per snapshot only when `refs/main` names none of several."""
    main = read_small(repo + "/refs/main")
    snapshots = snapshot_names(repo + "/snapshots")
    return SnapshotChoice(_pick(repo, main, snapshots), main, snapshots)


def _pick(repo: str, main: str | None, snapshots: tuple[str, ...]) -> str | None:
    if main in snapshots:
        return main
    if len(snapshots) <= 1:
        return snapshots[0] if snapshots else None

    def mtime(commit: str) -> float:
        try:
            return os.stat(f"{repo}/snapshots/{commit}").st_mtime
        except OSError:
            return 0.0

    return max(snapshots, key=mtime)


def snapshot_names(snapshots_dir: str) -> tuple[str, ...]:
    """The folders in `snapshots/` (links to folders included), in directory order."""
    try:
        with os.scandir(snapshots_dir) as it:
            return tuple([e.name for e in it if e.is_dir()])  # ignored names are files
    except OSError:
        return ()


def read_small(path: str) -> str | None:
    """A ref file's text: one open, one fstat, one read (refs are 40 bytes); None if it is not
    a regular file (a FIFO named `main` must not stop the listing) or cannot be read."""
    got = read_ref(path)
    return None if got is None else got[0]


def read_ref(path: str) -> tuple[str, os.stat_result] | None:
    """`read_small`'s text and the file's stat, taken when it was opened (before the read)."""
    try:
        raw, st = read_head(path, 256)
    except OSError:
        return None
    return raw.decode("utf-8", errors="replace").strip(), st


def read_refs(
    refs_dir: str,
    main: str | None = None,
    seen: Seen | None = None,
    names: list[str] | None = None,
    read: dict[str, FileStamp] | None = None,
) -> dict[str, str]:
    """ref name (as scan_cache_dir names it: `main`, `refs/pr/1`) -> commit hash.

    `main`: the commit `refs/main` named when the repo was listed; that file is not read again.
    `seen` gets each folder's stat (before it is listed), `names` every ref file's name, `read`
    the stamp of each ref file read that can vouch for what it held (`file_stamp`).
    """
    found: dict[str, str] = {}
    stack = [(refs_dir, "")]
    while stack:
        folder, prefix = stack.pop()
        if seen is not None:
            seen.append((prefix, stat_or_none(folder)))
        try:
            with os.scandir(folder) as it:
                items = [(e.name, e.path, e.is_dir()) for e in it]
        except OSError:
            continue
        for name, path, is_dir in items:
            if is_dir:
                stack.append((path, f"{prefix}{name}/"))
            elif name not in IGNORED_NAMES:
                if names is not None:
                    names.append(prefix + name)
                if main and not prefix and name == "main":
                    found[name] = main
                elif (got := read_ref(path)) is not None:
                    found[prefix + name] = got[0]
                    if read is not None and (stamp := file_stamp(got[1])) is not None:
                        read[prefix + name] = stamp
    return found


def stat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def file_stamp(st: os.stat_result) -> FileStamp | None:
    """(inode, size, mtime_ns, ctime_ns) of a file stat'ed before it was read; None if it
    changed too recently to vouch for what was read (see `stamp_of`)."""
    if stamp_of(st) is None:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def stamp_of(st: os.stat_result | None) -> Stamp | None:
    """(inode, mtime_ns, ctime_ns) of a folder or file stat'ed before it was read; None if
    there is no stat, or it changed less than `RACY_NS` ago: a second change within the same
    timestamp tick would leave the stamp as it is (git's "racy clean" rule)."""
    if st is None or time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_ctime_ns
