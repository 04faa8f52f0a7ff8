"""The Hugging Face hub cache, read with as few system calls as possible.

`list_cache` names the `models--ORG--NAME` repos and their snapshots (one scandir per folder,
one read of `refs/main`, no stat). `walk_repo` resolves every snapshot file to its blob
and stats each blob once, which gives the same repo and revision sizes as
`huggingface_hub.scan_cache_dir()`: a blob shared by several files or revisions counts once.

Hot loops use plain strings and `os.scandir`, not `Path`: with 60,000 snapshot files the
per-file Python overhead is what the time goes to. A repo whose folders have not changed since
the last walk is not walked again (see `walk_repo`).
"""

from __future__ import annotations

import dataclasses
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from vllm_console.core.entry import ModelEntry, Revision, Source

REPO_PREFIX = "models--"
IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
MAX_REPORTED_LINKS = 3
RACY_NS = 2_000_000_000  # a folder changed less than 2 s ago is not remembered
MEMO_LIMIT = 50_000


@dataclass(frozen=True)
class RepoWalk:
    """Everything `walk_repo` learnt about one cache repo."""

    revisions: tuple[Revision, ...]
    size_bytes: int
    files: tuple[str, ...]  # of the chosen snapshot, relative
    incomplete: int
    problems: tuple[str, ...]


# repo folder -> ((chosen path, folder stamps), its walk)
_MEMO: dict[str, tuple[tuple[Path, tuple[tuple[int, int] | None, ...]], RepoWalk]] = {}


def repo_dir(entry: ModelEntry) -> str:
    return os.path.join(str(entry.root), REPO_PREFIX + entry.id.replace("/", "--"))


def list_cache(hf_cache: Path) -> tuple[list[ModelEntry], list[str]]:
    """The cache's model repos, names only. A missing cache is no cache; unreadable, a warning.

    Only `refs/main` is read here (to choose the snapshot); `walk_repo` reads every ref.
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


def _read_small(path: str) -> str | None:
    """A ref file's text, with one open and one read (refs are 40 bytes)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 256).decode("utf-8", errors="replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)


def _list_repo(hf_cache: Path, name: str, path: str) -> ModelEntry:
    main = _read_small(path + "/refs/main")
    snapshots = _snapshot_names(path + "/snapshots")
    chosen = _choose_snapshot(path + "/snapshots", snapshots, main)
    base = Path(path + "/snapshots")
    ordered = sorted(snapshots, key=lambda c: (c != chosen, c))
    revisions = tuple(Revision(c, base / c, ("main",) if c == main else ()) for c in ordered)
    entry_path = revisions[0].path if revisions else base.parent
    repo_id = name[len(REPO_PREFIX) :].replace("--", "/")
    return ModelEntry(repo_id, entry_path, Source.HF_CACHE, hf_cache, revisions)


def read_refs(refs_dir: str) -> dict[str, str]:
    """ref name (as scan_cache_dir names it: `main`, `refs/pr/1`) -> commit hash."""
    found: dict[str, str] = {}
    stack = [(refs_dir, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as it:
                items = [(e.name, e.path, e.is_dir()) for e in it]
        except OSError:
            continue
        for name, path, is_dir in items:
            if is_dir:
                stack.append((path, f"{prefix}{name}/"))
            elif name not in IGNORED_NAMES:
                commit = _read_small(path)
                if commit is not None:
                    found[prefix + name] = commit
    return found


def _snapshot_names(snapshots_dir: str) -> list[str]:
    try:
        with os.scandir(snapshots_dir) as it:
            return [e.name for e in it if e.name not in IGNORED_NAMES and e.is_dir()]
    except OSError:
        return []


def _choose_snapshot(snapshots_dir: str, snapshots: list[str], main: str | None) -> str | None:
    """The snapshot `refs/main` names, else the most recently modified one."""
    if main in snapshots:
        return main
    if not snapshots:
        return None
    if len(snapshots) == 1:
        return snapshots[0]

    def mtime(commit: str) -> float:
        try:
            return os.stat(f"{snapshots_dir}/{commit}").st_mtime
        except OSError:
            return 0.0

    return max(snapshots, key=mtime)


def _stamp(path: str) -> tuple[int, int] | None:
    """(inode, mtime_ns) of a folder, or None if it changed too recently to be trusted.

    A folder's mtime moves when an entry is added, removed or renamed; one changed less than
    RACY_NS ago could change again within the same timestamp tick (git's "racy clean" rule).
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    if time.time_ns() - st.st_mtime_ns < RACY_NS:
        return None
    return st.st_ino, st.st_mtime_ns


def _read_snapshot(snapshot: str, blobs_dir: str) -> tuple[list[str], list[str], bool]:
    """(relative file names, blob keys, has subfolders) of one snapshot; no blob is touched.

    The usual link `../../blobs/HASH` is recognised by its prefix; anything else is joined and
    normalised like scan_cache_dir's `os.path.abspath`. A key is the blob's path.
    """
    names: list[str] = []
    keys: list[str] = []
    blob_prefix = blobs_dir + "/"
    stack = [(snapshot, "", "../../blobs/")]
    nested = False
    while stack:
        folder, rel, link_prefix = stack.pop()
        try:
            with os.scandir(folder) as it:
                items = list(it)
        except OSError:
            continue
        cut = len(link_prefix)
        for e in items:
            if e.is_symlink():
                target = os.readlink(e.path)
                if target.startswith(link_prefix) and "/" not in target[cut:]:
                    keys.append(blob_prefix + target[cut:])
                else:
                    keys.append(os.path.normpath(os.path.join(folder, target)))
            elif e.is_dir():
                stack.append((e.path, f"{rel}{e.name}/", "../" + link_prefix))
                nested = True
                continue
            else:
                keys.append(e.path)
            names.append(rel + e.name)
    return names, keys, nested


def _stat_blobs(keys: set[str]) -> dict[str, int]:
    """blob key -> size; -1 for a missing blob (a broken link), -2 for a folder."""
    sizes: dict[str, int] = {}
    for key in keys:
        try:
            st = os.stat(key)
        except OSError:
            sizes[key] = -1
        else:
            sizes[key] = -2 if stat.S_ISDIR(st.st_mode) else st.st_size
    return sizes


def _count_incomplete(blobs_dir: str) -> int:
    try:
        with os.scandir(blobs_dir) as it:
            return sum(1 for e in it if e.name.endswith(".incomplete"))
    except OSError:
        return 0


def clear_memo() -> None:
    """Forget remembered repo walks (the next `walk_repo` reads everything)."""
    _MEMO.clear()


def walk_repo(entry: ModelEntry) -> RepoWalk:
    """Sizes of every revision and of the repo, all refs, the chosen snapshot's files, problems.

    Blobs are written once under their hash and never rewritten, and snapshot links are only
    ever added or removed, so a repo whose blobs folder and (flat) snapshot folders all have
    the mtimes they had last time has the same sizes: those are remembered. Refs are read
    every time (they are rewritten in place).
    """
    repo = repo_dir(entry)
    refs = read_refs(repo + "/refs")
    stamps = [_stamp(repo + "/blobs"), *(_stamp(str(rev.path)) for rev in entry.revisions)]
    key = (entry.path, tuple(stamps))
    memo = _MEMO.get(repo)
    if memo is not None and memo[0] == key:
        walk = memo[1]
    else:
        walk, nested = _walk(entry, repo + "/blobs")
        if not nested and None not in stamps:
            if len(_MEMO) >= MEMO_LIMIT:
                _MEMO.clear()
            _MEMO[repo] = (key, walk)
    revisions = tuple(
        Revision(
            r.commit,
            r.path,
            tuple(sorted(n for n, c in refs.items() if c == r.commit)),
            r.size_bytes,
            r.nb_files,
        )
        for r in walk.revisions
    )
    problems = (*_ref_problems(entry, refs), *walk.problems)
    return dataclasses.replace(walk, revisions=revisions, problems=problems)


def _walk(entry: ModelEntry, blobs_dir: str) -> tuple[RepoWalk, bool]:
    walked = [(rev, *_read_snapshot(str(rev.path), blobs_dir)) for rev in entry.revisions]
    unique: set[str] = set()
    for _, _, keys, _ in walked:
        unique.update(keys)
    sizes = _stat_blobs(unique)
    revisions: list[Revision] = []
    broken: list[str] = []
    files: tuple[str, ...] = ()
    for rev, names, keys, _ in walked:
        chosen = rev.path == entry.path
        rev_sizes = [sizes[k] for k in set(keys)]
        kept = names
        if rev_sizes and min(rev_sizes) < 0:
            kept = [n for n, k in zip(names, keys, strict=True) if sizes[k] >= 0]
            broken += _broken(names, keys, sizes, "" if chosen else rev.commit)
        total = sum(s for s in rev_sizes if s > 0)
        revisions.append(Revision(rev.commit, rev.path, (), total, len(kept)))
        if chosen:
            files = tuple(sorted(kept))
    size = sum(s for s in sizes.values() if s > 0)
    incomplete = _count_incomplete(blobs_dir)
    nested = any(w[3] for w in walked)
    walk = RepoWalk(tuple(revisions), size, files, incomplete, tuple(_cap_links(broken)))
    return walk, nested


def _broken(names: list[str], keys: list[str], sizes: dict[str, int], commit: str) -> list[str]:
    where = f" (revision {commit[:8]})" if commit else ""
    return [f"broken link: {n}{where}" for n, k in zip(names, keys, strict=True) if sizes[k] == -1]


def _cap_links(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_REPORTED_LINKS:
        return problems
    more = len(problems) - MAX_REPORTED_LINKS
    return [*problems[:MAX_REPORTED_LINKS], f"{more} more broken links"]


def _ref_problems(entry: ModelEntry, refs: dict[str, str]) -> list[str]:
    """Refs naming a snapshot that is not there (scan_cache_dir calls the repo corrupt)."""
    commits = {rev.commit for rev in entry.revisions}
    problems = [
        f"ref {ref} points to missing snapshot {commit[:8]}"
        for ref, commit in sorted(refs.items())
        if commit not in commits
    ]
    if not entry.revisions:
        problems.append("no snapshots")
    return problems
