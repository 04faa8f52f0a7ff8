"""A Hugging Face cache repo's blobs and snapshot links: sizes, files, broken links.

Two depths (the listing itself, names only, is `hfcache.list_cache`):

- `scan_repo` (the catalog's complete scan) adds what the list shows and a launch needs: the
  repo's size as the sum of its `blobs/` (one scandir, one lstat per blob), every ref, and the
  chosen snapshot's files, size and broken links. Other revisions' links are not read, so their
  sizes are None. On a cache written by downloads every blob is linked from some snapshot, and
  the sum equals `huggingface_hub.scan_cache_dir()`'s size;
- `walk_repo` (the details pane, on demand) resolves every link of every snapshot like
  `scan_cache_dir()` does: the size of each revision and of what they reference (a blob shared
  by several files or revisions counts once), broken links anywhere, and the bytes in blobs
  that no revision links to.

Hot loops use plain strings and `os.scandir`, not `Path`: with 60,000 snapshot files the
per-file Python overhead is what the time goes to. A repo whose folders have not changed since
its last `walk_repo` is not walked again. `scan_chosen` and the `seen` arguments report each
folder's stat taken before it is read, for `catalog_index`.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vllm_console.compat import child_path
from vllm_console.core.catalog import hfcache
from vllm_console.core.catalog.entry import ModelEntry, Revision
from vllm_console.core.catalog.hfcache import IGNORED_NAMES, Seen, main_of, read_refs, repo_dir

MAX_REPORTED_LINKS = 3
MEMO_LIMIT = 50_000
MISSING, FOLDER = -1, -2  # sizes of link targets that are not files
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)


@dataclass(frozen=True)
class RepoWalk:
    """What `scan_repo` or `walk_repo` learnt about one cache repo.

    `size_bytes`: `scan_repo`, every complete blob (plus chosen-snapshot files kept outside
    `blobs/`); `walk_repo`, what the revisions reference, as `scan_cache_dir()` counts it.
    `unreferenced_bytes`: blobs no revision links to; None from `scan_repo` (not looked at).
    """

    revisions: tuple[Revision, ...]
    size_bytes: int
    files: tuple[str, ...]  # of the chosen snapshot, relative
    incomplete: int
    problems: tuple[str, ...]
    unreferenced_bytes: int | None = None


@dataclass(frozen=True)
class ChosenScan:
    """What `scan_repo` reads apart from the refs: the blobs and the chosen snapshot."""

    size_bytes: int
    files: tuple[str, ...]
    incomplete: int
    broken: tuple[str, ...]
    chosen_size: int | None = None
    chosen_files: int | None = None
    # the repo's other snapshots, sorted (the first list may not have named them); None: not
    # listed (the entry's own revisions stand)
    others: tuple[str, ...] | None = None


# repo folder -> ((chosen path, folder stamps), its walk without refs)
_MEMO: dict[str, tuple[tuple[Path, tuple[hfcache.Stamp | None, ...]], RepoWalk]] = {}


def scan_repo(entry: ModelEntry) -> RepoWalk:
    """The catalog's complete scan of one repo: every ref, blob sizes, the chosen snapshot.

    The repo's size is the sum of its complete blobs; only the chosen snapshot (`entry.path`)
    has its links read, so only its revision gets a size and a file count. Broken links are
    those of the chosen snapshot. See `walk_repo` for every revision.
    """
    refs = read_refs(repo_dir(entry) + "/refs", main_of(entry))
    return with_refs(entry, scan_chosen(entry), refs)


def scan_chosen(entry: ModelEntry, seen: Seen | None = None) -> ChosenScan:
    """`scan_repo` without the refs. `seen` gets (folder relative to the repo, its stat before
    it was read) for `blobs`, `snapshots` (its names are the other revisions) and each folder
    of the chosen snapshot; ("", None) if a file of that snapshot is not a link into `blobs/`
    (it may change in place)."""
    repo = repo_dir(entry)
    blobs_dir = repo + "/blobs"
    blobs, incomplete = _scan_blobs(blobs_dir, seen)
    size = sum(blobs.values())
    first = entry.revisions[0] if entry.revisions else None
    if first is None or first.path != entry.path:
        return ChosenScan(size, (), incomplete, ())
    if seen is not None:
        seen.append(("snapshots", hfcache.stat_or_none(repo + "/snapshots")))
    others = hfcache.snapshot_names(repo + "/snapshots")
    others = tuple(sorted(c for c in others if c != first.commit))
    snap: Seen | None = None if seen is None else []
    names, keys, _ = _read_snapshot(str(first.path), blobs_dir, snap)
    odd = _stat_targets(keys, blobs, blobs_dir)
    if odd:
        size += sum(s for s in odd.values() if s > 0)
        blobs = {**blobs, **odd}
    sized, kept, lost = _sized(first, (), names, keys, blobs, True)
    if seen is not None and snap is not None:
        head = f"snapshots/{first.commit}/"
        seen += [(head + rel, st) for rel, st in snap]
        if str(first.path) != repo + "/" + head[:-1] or any("/" in k for k in odd):
            seen.append(("", None))
    broken = tuple(_cap_links(lost))
    files = tuple(sorted(kept))
    return ChosenScan(size, files, incomplete, broken, sized.size_bytes, sized.nb_files, others)


def with_refs(entry: ModelEntry, chosen: ChosenScan, refs: dict[str, str]) -> RepoWalk:
    """The repo's `RepoWalk` from its `scan_chosen` and its refs (`read_refs`): the chosen
    revision (sized) first, then the other snapshots `scan_chosen` listed."""
    by_commit = _refs_by_commit(refs)
    listed = entry.revisions
    if listed and chosen.others is not None:
        base = listed[0].path.parent
        listed = (listed[0], *[Revision.listed(c, child_path(base, c)) for c in chosen.others])
    revisions = [Revision.listed(r.commit, r.path, by_commit.get(r.commit, ())) for r in listed]
    if revisions and chosen.chosen_files is not None:
        first = revisions[0]
        sized = (chosen.chosen_size, chosen.chosen_files)
        revisions[0] = Revision.listed(first.commit, first.path, first.refs, *sized)
    problems = (*_ref_problems(listed, refs), *chosen.broken)
    return RepoWalk(tuple(revisions), chosen.size_bytes, chosen.files, chosen.incomplete, problems)


def walk_repo(entry: ModelEntry) -> RepoWalk:
    """Every revision's links resolved, like `scan_cache_dir()`: exact sizes, all broken links.

    Blobs are written once under their hash and never rewritten, and snapshot links are only
    ever added or removed, so a repo whose blobs folder and (flat) snapshot folders all have
    the stamps they had last time (`hfcache.stamp_of`: none changed too recently to tell) has
    the same sizes: those are remembered. Refs are read every time (they are rewritten in
    place).
    """
    entry = hfcache.with_all_revisions(entry)
    repo = repo_dir(entry)
    refs = read_refs(repo + "/refs")
    folders = [repo + "/blobs", *(str(rev.path) for rev in entry.revisions)]
    stamps = [hfcache.stamp_of(hfcache.stat_or_none(folder)) for folder in folders]
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
    by_commit = _refs_by_commit(refs)
    revisions = tuple(
        dataclasses.replace(r, refs=by_commit.get(r.commit, ())) for r in walk.revisions
    )
    problems = (*_ref_problems(entry.revisions, refs), *walk.problems)
    return dataclasses.replace(walk, revisions=revisions, problems=problems)


def clear_memo() -> None:
    """Forget remembered repo walks (the next `walk_repo` reads everything)."""
    _MEMO.clear()


def _walk(entry: ModelEntry, blobs_dir: str) -> tuple[RepoWalk, bool]:
    walked = [(rev, *_read_snapshot(str(rev.path), blobs_dir)) for rev in entry.revisions]
    referenced: set[str] = set()
    for _, _, keys, _ in walked:
        referenced.update(keys)
    blobs, incomplete = _scan_blobs(blobs_dir)
    unreferenced = sum(s for k, s in blobs.items() if k not in referenced)
    sizes = {**blobs, **_stat_targets(referenced, blobs, blobs_dir)}
    size = sum(s for s in (sizes[k] for k in referenced) if s > 0)
    revisions: list[Revision] = []
    broken: list[str] = []
    files: tuple[str, ...] = ()
    for rev, names, keys, _ in walked:
        chosen = rev.path == entry.path
        sized, kept, lost = _sized(rev, (), names, keys, sizes, chosen)
        revisions.append(sized)
        broken += lost
        if chosen:
            files = tuple(sorted(kept))
    nested = any(w[3] for w in walked)
    problems = tuple(_cap_links(broken))
    return RepoWalk(tuple(revisions), size, files, incomplete, problems, unreferenced), nested


def _read_snapshot(
    snapshot: str, blobs_dir: str, seen: Seen | None = None
) -> tuple[list[str], list[str], bool]:
    """(relative file names, blob keys, has subfolders) of one snapshot; no blob is touched.

    A key is a blob's name when the file is a link into `blobs_dir` (the usual
    `../../blobs/HASH` is recognised by its prefix; anything else is joined and normalised like
    scan_cache_dir's `os.path.abspath`), else the path of what it is (it holds a "/").
    Links are read relative to an open folder, which spares the kernel the long path.
    `seen` gets each folder's stat, taken before it is listed.
    """
    names: list[str] = []
    keys: list[str] = []
    stack = [(snapshot, "", "../../blobs")]
    nested = False
    while stack:
        folder, rel, link_head = stack.pop()
        try:
            fd = os.open(folder, _DIR_FLAGS)
        except OSError:
            if seen is not None:
                seen.append((rel, None))
            continue
        try:
            if seen is not None:
                seen.append((rel, os.fstat(fd)))
            with os.scandir(fd) as it:
                items = [(e.name, e.is_symlink(), e.is_dir(follow_symlinks=False)) for e in it]
            for name, is_link, is_dir in items:
                if is_link:
                    try:
                        target = os.readlink(name, dir_fd=fd)
                    except OSError:
                        continue
                    head, _, blob = target.rpartition("/")
                    if head != link_head:
                        blob = _link_key(folder, target, blobs_dir)
                    keys.append(blob)
                elif is_dir:
                    stack.append((f"{folder}/{name}", f"{rel}{name}/", "../" + link_head))
                    nested = True
                    continue
                else:
                    keys.append(f"{folder}/{name}")
                names.append(rel + name)
        finally:
            os.close(fd)
    return names, keys, nested


def _link_key(folder: str, target: str, blobs_dir: str) -> str:
    path = os.path.normpath(os.path.join(folder, target))
    head, _, name = path.rpartition("/")
    return name if head == os.path.normpath(blobs_dir) else path


def _scan_blobs(blobs_dir: str, seen: Seen | None = None) -> tuple[dict[str, int], int]:
    """(blob name -> size of every complete blob, number of `.incomplete` blobs).

    One scandir and one lstat per blob (a stat for a blob that is itself a link), relative to
    the open folder. `seen` gets the folder's stat before it is listed, None if a blob is a
    link (what it points to may change) or the folder could not be read.
    """
    st: os.stat_result | None = None
    try:
        fd = os.open(blobs_dir, _DIR_FLAGS)
    except OSError:
        if seen is not None:
            seen.append(("blobs", None))
        return {}, 0
    try:
        st = os.fstat(fd) if seen is not None else None
        with os.scandir(fd) as it:
            found = [e for e in it if e.is_file()]
        if seen is not None and any(e.is_symlink() for e in found):
            st = None
        try:
            sizes = {e.name: e.stat().st_size for e in found}
        except OSError:  # one went away meanwhile
            sizes = {e.name: s for e in found if (s := _entry_size(e)) >= 0}
    except OSError:
        st = None
        return {}, 0
    finally:
        os.close(fd)
        if seen is not None:
            seen.append(("blobs", st))
    incomplete = [name for name in sizes if name.endswith(".incomplete")]
    for name in (*incomplete, *IGNORED_NAMES.intersection(sizes)):
        del sizes[name]
    return sizes, len(incomplete)


def _entry_size(e: os.DirEntry[str]) -> int:
    try:
        return e.stat().st_size
    except OSError:
        return MISSING


def _stat_targets(keys: Iterable[str], blobs: dict[str, int], blobs_dir: str) -> dict[str, int]:
    """key -> size of each link target that is not a listed blob; MISSING or FOLDER if not a file.

    Links downloads make always point at a listed blob, so this stats only the odd ones: broken
    links, files kept in the snapshot itself, links out of `blobs/`.
    """
    sizes: dict[str, int] = {}
    for key in keys:
        if key in blobs or key in sizes:
            continue
        try:
            st = os.stat(key if "/" in key else f"{blobs_dir}/{key}")
        except OSError:
            sizes[key] = MISSING
        else:
            sizes[key] = FOLDER if stat.S_ISDIR(st.st_mode) else st.st_size
    return sizes


def _sized(
    rev: Revision,
    refs: tuple[str, ...],
    names: list[str],
    keys: list[str],
    sizes: dict[str, int],
    chosen: bool,
) -> tuple[Revision, list[str], list[str]]:
    """(the revision with its size and file count, its files, its broken-link problems)."""
    unique = [sizes[k] for k in set(keys)]
    kept = names
    broken: list[str] = []
    if unique and min(unique) < 0:
        kept = [n for n, k in zip(names, keys, strict=True) if sizes[k] >= 0]
        where = "" if chosen else f" (revision {rev.commit[:8]})"
        broken = [
            f"broken link: {n}{where}"
            for n, k in zip(names, keys, strict=True)
            if sizes[k] == MISSING
        ]
    total = sum(s for s in unique if s > 0)
    return Revision(rev.commit, rev.path, refs, total, len(kept)), kept, broken


def _refs_by_commit(refs: dict[str, str]) -> dict[str, tuple[str, ...]]:
    by_commit: dict[str, list[str]] = {}
    for name, commit in refs.items():
        by_commit.setdefault(commit, []).append(name)
    return {commit: tuple(sorted(names)) for commit, names in by_commit.items()}


def _cap_links(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_REPORTED_LINKS:
        return problems
    more = len(problems) - MAX_REPORTED_LINKS
    return [*problems[:MAX_REPORTED_LINKS], f"{more} more broken links"]


def _ref_problems(revisions: tuple[Revision, ...], refs: dict[str, str]) -> list[str]:
    """Refs naming a snapshot that is not there (scan_cache_dir calls the repo corrupt)."""
    commits = {rev.commit for rev in revisions}
    problems = [
        f"ref {ref} points to missing snapshot {commit[:8]}"
        for ref, commit in sorted(refs.items())
        if commit not in commits
    ]
    if not revisions:
        problems.append("no snapshots")
    return problems
