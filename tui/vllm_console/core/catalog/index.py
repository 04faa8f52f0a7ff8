"""The catalog's complete scan remembered on disk, so that a fresh process gets it at list speed.

`<cache dir>/vllm-console/catalog-index-v1.pickle` (`default_index_path`) holds, per entry of
the last complete scan, what `catalog.detail` computed and the stamps it was computed from. An
entry whose stamps still match is not read again; any other is detailed as usual. The index
only ever saves work: a missing, corrupt, foreign or old-version file is ignored (and
rewritten), and one that cannot be written leaves the scan as it was.

Why a matching cache repo is unchanged (the entry is keyed by its chosen snapshot, so the
commit `refs/main` names, read by every listing, is part of the key):

- a stamp is (inode, mtime_ns, ctime_ns) of a folder, taken *before* the folder is read, so a
  change made while it is read gives a new stamp next time, never a stale result;
- `blobs/`: its mtime moves whenever a blob is added, removed or renamed (a download's
  `.incomplete` becoming the blob), so the same stamp means the same blob names. A blob is
  written once under its content's hash and never rewritten, so the same names mean the same
  sizes and contents: repo size, `.incomplete` count, config.json and weight headers (all read
  through links into `blobs/`). The known limit, like git's: a blob rewritten in place (not
  what downloads do) is not noticed. A repo with a blob that is itself a link is not indexed;
- `snapshots/`: its mtime moves whenever a snapshot folder is added, removed or renamed, so
  the same stamp means the same other revisions (their names are kept; the first list may
  name only the chosen one);
- the chosen snapshot and each of its subfolders: a link cannot be changed in place, only
  removed and created again, which moves its folder's mtime; so the same stamps mean the same
  links to the same blobs (files, broken links, the revision's size). A snapshot holding a
  file that is not a link into `blobs/` (a copy, a link elsewhere) is not indexed;
- the racy rule (git's): a folder whose mtime or ctime is less than `hfcache.RACY_NS` (2 s)
  old is not trusted, since a second change within the same timestamp tick would leave its
  stamp as it is. A folder trusted at time T and changed later gets a newer stamp;
- `refs/`: ref files are rewritten in place, which moves no folder's mtime, so each ref file
  read keeps its own (inode, size, mtime_ns, ctime_ns) from when it was opened, none of them
  racy, and the commit it held; a ref whose stamp still matches is stat'ed, not read again.

A model folder is walked every time (its size counts every file, and a file rewritten in
place moves no folder's mtime); what config.json and the weight headers say is reused while
the walk finds the same file names (they decide the format) and each file read keeps its
(inode, size, mtime_ns, ctime_ns), none of them racy.

The file is a pickle of plain tuples, dicts and strings (a custom unpickler refuses anything
else), behind a magic line and a CRC-32, written to a temporary file and renamed over the
index. It keeps the entries of the latest scan only, and is not rewritten when nothing changed.

The file is bytes on disk, so nothing in it is trusted: it is read without blocking, only if
it is a regular file of at most `MAX_INDEX_BYTES` owned by this user and writable by no one
else; no class is ever looked up while unpickling (no code runs); and every record is checked
(`records`) before it is used. A file that fails is no index (a complete scan, then a new
file); a record that fails is an entry the index does not know. One risk is left to the
ownership check and the CRC: a pickle that stores to a memo slot numbered in the billions
makes CPython's C unpickler (before gh-115952) allocate that many slots at once; checking
every opcode first would cost more than the whole warm scan, and only this user's own
account can write such a file with a CRC that matches. The folder is created 0700
and the file 0600: it names every model and where it lies.
"""

from __future__ import annotations

import io
import os
import pickle
import stat
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vllm_console import compat
from vllm_console.core.catalog import hfcache, hfwalk, records
from vllm_console.core.catalog.describe import decode
from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.core.files import open_regular, private_dir, read_fd, write_private

__all__ = [
    "CatalogIndex",
    "default_index_path",
    "file_stamps",
    "folder_stamps",
    "load_records",
    "refs_with_layout",
    "same_folders",
    "usable",
]

INDEX_NAME = "catalog-index-v1.pickle"
MAGIC = b"vllm-console catalog index\n"
# 2: a repo record keeps the names of its other snapshots; 3: the model's metadata is one
# nested tuple (`ModelMeta.as_tuple`), not nine loose values; 4: the refs' layout keeps each
# ref file's stamp and commit
VERSION = 4
# 1,000 repos take 1.3 MiB: this is room for some 50,000, and bounds what a hostile file costs
MAX_INDEX_BYTES = 64 * 1024 * 1024

FolderStamps = tuple[tuple[str, int, int, int], ...]  # (folder, inode, mtime_ns, ctime_ns)
# (every file of the model, (file read, inode, size, mtime_ns, ctime_ns) of each file read)
FileStamps = tuple[tuple[str, ...], tuple[tuple[str, int, int, int, int], ...]]
Record = tuple[Any, ...]  # plain data only: tuples, dicts, str, int, None


def default_index_path(home: Path, environ: Mapping[str, str]) -> Path:
    """`$XDG_CACHE_HOME/vllm-console/...`, or `~/.cache/vllm-console/...` (XDG: an empty or
    relative XDG_CACHE_HOME is ignored)."""
    xdg = environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else home / ".cache"
    return base / "vllm-console" / INDEX_NAME


def folder_stamps(seen: hfcache.Seen) -> FolderStamps | None:
    """The stamps of the folders a scan read; None if one of them cannot be trusted."""
    stamps: list[tuple[str, int, int, int]] = []
    for rel, st in seen:
        stamp = hfcache.stamp_of(st)
        if stamp is None:
            return None
        stamps.append((rel, *stamp))
    return tuple(stamps)


def file_stamps(folder: str, names: Sequence[str], listing: Sequence[str]) -> FileStamps | None:
    """`listing` (every file of the model: which ones exist decides its format) and (name,
    inode, size, mtime_ns, ctime_ns) of each file read (links followed); None if one of them
    cannot be stat'ed or changed less than RACY_NS ago."""
    stamps: list[tuple[str, int, int, int, int]] = []
    for name in names:
        # `os.path.join(folder, name)` for the same file in a fifth of the time (here 0.1 µs
        # against 0.4, beside a 2 µs stat: once per file read of every model of a warm scan)
        path = f"{folder}/{name}" if folder and name[:1] != "/" else name
        try:
            st = os.stat(path)
        except OSError:
            return None
        if hfcache.stamp_of(st) is None:
            return None
        stamps.append((name, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(listing), tuple(stamps)


def same_folders(base: str, stamps: FolderStamps) -> bool:
    """Whether each folder (relative to `base`; "" is `base`) still has its stamp."""
    for rel, ino, mtime, ctime in stamps:
        try:
            st = os.stat(f"{base}/{rel}" if rel else base)
        except OSError:
            return False
        if st.st_ino != ino or st.st_mtime_ns != mtime or st.st_ctime_ns != ctime:
            return False
    return True


def refs_with_layout(refs_dir: str, main: str | None) -> tuple[dict[str, str], Record | None]:
    """`hfcache.read_refs` plus the refs' layout, if trusted: (folder stamps, ref file names,
    (name, inode, size, mtime_ns, ctime_ns, commit) of each ref file read)."""
    seen: hfcache.Seen = []
    names: list[str] = []
    read: dict[str, hfcache.FileStamp] = {}
    refs = hfcache.read_refs(refs_dir, main, seen, names, read)
    stamps = folder_stamps(seen)
    if stamps is None:
        return refs, None
    known = tuple((name, *stamp, refs[name]) for name, stamp in read.items())
    return refs, (stamps, tuple(names), known)


def _read_known_refs(
    refs_dir: str, main: str | None, layout: Record | None
) -> dict[str, str] | None:
    """The refs, if no refs folder and no ref file changed (each ref file stat'ed, not read:
    a rewrite in place moves its mtime, a rename its inode); else None."""
    if layout is None:
        return None
    stamps, names, known = layout
    if not same_folders(refs_dir, stamps):
        return None
    by_name = {ref[0]: ref for ref in known}
    found: dict[str, str] = {}
    for name in names:
        if main and name == "main":
            found[name] = main
            continue
        ref = by_name.get(name)
        if ref is None:
            return None  # it could not be read, or changed too recently to vouch for
        try:
            st = os.stat(f"{refs_dir}/{name}")
        except OSError:
            return None
        if (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) != ref[1:5]:
            return None
        found[name] = ref[5]
    return found


class _PlainUnpickler(pickle.Unpickler):
    """Plain data only: no class is ever looked up, so no code runs while loading."""

    def find_class(self, module: str, name: str) -> type:
        raise pickle.UnpicklingError(f"refused: {module}.{name}")


def load_records(path: Path) -> dict[str, Record] | None:
    """The records of an index file; {} if there is none, None if it is unusable."""
    try:
        raw = _read_own(str(path))
    except FileNotFoundError:
        return {}
    except OSError:
        return None
    head = len(MAGIC) + 4
    if not raw.startswith(MAGIC) or zlib.crc32(raw[head:]) != int.from_bytes(
        raw[len(MAGIC) : head], "little"
    ):
        return None
    try:
        with compat.gc_paused():  # thousands of new containers, no garbage
            data = _PlainUnpickler(io.BytesIO(raw[head:])).load()
    except Exception:  # a damaged pickle can fail in many ways; it is only a cache
        return None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return None
    records = data.get("records")
    return records if isinstance(records, dict) else None


def _read_own(path: str) -> bytes:
    """The index file's bytes, if it is a regular file this user owns and only it can write
    (anyone else's could hold anything); OSError otherwise."""
    fd, st = open_regular(path)
    try:
        if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise OSError(f"{path} is not this user's own file")
        return read_fd(fd, MAX_INDEX_BYTES)
    finally:
        os.close(fd)


def _repo_record(record: object) -> Record | None:
    """A "repo" record, if it has the shape `remember_repo` gives it."""
    if type(record) is not tuple or len(record) != 5 or record[0] != "repo":
        return None
    _, stamps, layout, chosen, _ = record
    if not records.is_folder_stamps(stamps) or not records.is_refs_layout(layout):
        return None
    return record if records.is_chosen(chosen) else None


def usable(record: object) -> bool:
    """Whether a record read back from the file would be used: it has the shape and bounds
    of a record the catalog writes (a "files" record's stamps are only ever compared with
    ours, so they need no check)."""
    if type(record) is tuple and len(record) == 3 and record[0] == "files":
        return decode(record[2]) is not None
    if type(record) is tuple and len(record) == 6 and record[0] == records.MODELSCOPE:
        return records.is_modelscope(record) and decode(record[4]) is not None
    repo = _repo_record(record)
    return repo is not None and decode(repo[4]) is not None


def _key(entry: ModelEntry) -> str:
    return f"{entry.key}\0{entry.id}"


class CatalogIndex:
    """The index of one scan: lookups and new records, then `save` (the records looked up or
    made in this scan, and no others). Safe to use from several worker threads."""

    def __init__(self, path: Path, records: dict[str, Record], *, stale: bool = False) -> None:
        self.path = path
        self._old = records
        self._new: dict[str, Record] = {}
        self._dirty = stale

    @classmethod
    def load(cls, path: Path) -> CatalogIndex:
        """The index at `path`; empty (and to be rewritten) if it is missing or unusable."""
        records = load_records(path)
        return cls(path, records or {}, stale=records is None)

    def __len__(self) -> int:
        return len(self._old)

    def knows(self, entry: ModelEntry) -> bool:
        return _key(entry) in self._old

    def cached_repo(
        self, entry: ModelEntry
    ) -> tuple[hfwalk.ChosenScan, Any, dict[str, str]] | None:
        """(its blobs and chosen snapshot, what `catalog` stored of its files, its refs) if
        the cache repo's folders have not changed; else None."""
        key = _key(entry)
        record = _repo_record(self._old.get(key))
        if record is None:
            return None
        try:
            _, stamps, layout, chosen, described = record
            repo = hfcache.repo_dir(entry)
            if not same_folders(repo, stamps):
                return None
            main = hfcache.main_of(entry)
            refs = _read_known_refs(repo + "/refs", main, layout)
            if refs is None:
                refs, new_layout = refs_with_layout(repo + "/refs", main)
                self._dirty |= new_layout != layout
                layout = new_layout
            scan = hfwalk.ChosenScan(*chosen)
        except (TypeError, ValueError):
            return None
        self._new[key] = ("repo", stamps, layout, chosen, described)
        return scan, described, refs

    def remember_repo(
        self,
        entry: ModelEntry,
        stamps: FolderStamps,
        refs_layout: Record | None,
        scan: hfwalk.ChosenScan,
        described: Record,
    ) -> None:
        chosen = (
            scan.size_bytes,
            scan.files,
            scan.incomplete,
            scan.broken,
            scan.chosen_size,
            scan.chosen_files,
            scan.others,
        )
        self._new[_key(entry)] = ("repo", stamps, refs_layout, chosen, described)
        self._dirty = True

    def cached_files(self, entry: ModelEntry, stamps: FileStamps) -> Any:
        """What `catalog` stored of a model's files, if they still have these stamps."""
        key = _key(entry)
        record = self._old.get(key)
        if type(record) is not tuple or len(record) != 3 or record[0] != "files":
            return None
        if record[1] != stamps:  # ours, so a record that passes has the same plain shape
            return None
        self._new[key] = record
        return record[2]

    def remember_files(self, entry: ModelEntry, stamps: FileStamps, described: Record) -> None:
        self._new[_key(entry)] = ("files", stamps, described)
        self._dirty = True

    def cached_record(self, entry: ModelEntry, kind: str) -> Record | None:
        """The entry's stored record if it is of `kind` (a tuple led by it); the module that
        wrote it checks the rest and `keep`s it if it still holds."""
        record = self._old.get(_key(entry))
        return record if type(record) is tuple and record and record[0] == kind else None

    def keep(self, entry: ModelEntry, record: Record) -> None:
        """Carry a stored record that still holds into the next save."""
        self._new[_key(entry)] = record

    def remember(self, entry: ModelEntry, record: Record) -> None:
        """A new record of a module's own kind (see `cached_record`)."""
        self._new[_key(entry)] = record
        self._dirty = True

    def save(self) -> str | None:
        """Write the records of this scan, if they differ from the file's. A problem (the
        folder is not writable...) is returned as a sentence, never raised."""
        if not self._dirty and self._new.keys() == self._old.keys():
            return None
        new = dict(self._new)
        with compat.gc_paused():
            plain = {"version": VERSION, "records": records.shared_strings(new)}
            data = pickle.dumps(plain, protocol=5)
        try:
            private_dir(self.path.parent, self.path.parent)
            write_private(self.path, MAGIC + zlib.crc32(data).to_bytes(4, "little") + data)
        except OSError as exc:
            return f"could not save the catalog index {self.path}: {exc.strerror or exc}"
        self._old, self._new, self._dirty = new, {}, False
        return None
