"""Checks that plain data read back from the catalog index is what the catalog writes there.

The index file is bytes on disk: its unpickler makes nothing but builtin containers and
scalars, and these checks make sure they have the shapes and bounds the catalog's own records
have before any of it reaches an entry (a string where a number should be, a 10,000-deep
tuple, a 150-digit size, a ref name with `..` in it). A record that fails is not used: the
entry is read from its files again, as if the index did not know it.

`shared_strings` is the other direction: what the index does to its records before it
pickles them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from vllm_console.core.catalog.meta import FIELD_NAMES
from vllm_console.core.catalog.readers.numbers import MAX_CONTEXT, MAX_COUNT, MAX_DIM, MAX_PARAMS

MAX_NESTING = 64  # of a stored config.json (real ones nest 3 or 4 deep)
# Lists and dicts in one stored config, counted with repeats: a pickle can share one list
# between two places, and 60 levels of [x, x] made a walk of 2**60 from a few hundred bytes
# (json.loads never shares; real configs hold tens).
MAX_CONTAINERS = 10_000
MAX_SIZE = 1 << 62  # bytes of a repo, a count of files

_META_BOUNDS = {
    "params": MAX_PARAMS,
    "context_length": MAX_CONTEXT,
    "num_layers": MAX_COUNT,
    "num_kv_heads": MAX_COUNT,
    "head_dim": MAX_DIM,
    "stored_bytes": MAX_SIZE,
}
_BOUNDS = tuple(_META_BOUNDS.get(name, 0) for name in FIELD_NAMES)  # 0: a str field
_SCALARS: frozenset[type] = frozenset({str, int, float, bool, type(None)})


def is_int(value: object, low: int = 0, high: int = MAX_SIZE) -> bool:
    return type(value) is int and low <= value <= high


def _all_of(kinds: frozenset[type], values: Iterable[object]) -> bool:
    """Whether every value's type is one of `kinds` (one C-level pass: the checks run on
    every record of every scan, and a warm scan is mostly these checks)."""
    return set(map(type, values)) <= kinds


def is_strs(value: object) -> bool:
    """A tuple of strings (file names, problems, refs)."""
    return type(value) is tuple and _all_of(_STR, value)


def are_relative(value: object) -> bool:
    """A tuple of paths below a folder of the repo: none empty, absolute, with a NUL or a
    `..` part. Checked on the names joined, so one search covers them all (a name holding
    a newline may be refused when it need not be: the entry is then read again, no harm)."""
    if not is_strs(value):
        return False
    names: tuple[str, ...] = value  # type: ignore[assignment]
    if not names:
        return True
    joined = "\n" + "\n".join(names) + "\n"
    if "\n\n" in joined or "\n/" in joined or "\x00" in joined:
        return False
    # Substring tests are C loops, the pattern's alternation a step per character: the
    # pattern only runs where a ".." could make a ".." part (20 names: 1.5 µs, was 2.5)
    return ".." not in joined or _BAD_PARTS.search(joined) is None


# in names joined by newlines: an empty name, a leading "/", a NUL, a ".." part
_BAD_PARTS = re.compile(r"\n\n|\n/|\x00|\n\.\./|/\.\./|/\.\.\n|\n\.\.\n")


def is_meta(value: object) -> bool:
    """`ModelMeta.as_tuple()`'s shape: each field None, a str, or an int within its bound."""
    if type(value) is not tuple or len(value) != len(_BOUNDS):
        return False
    for item, bound in zip(value, _BOUNDS, strict=True):
        if item is None:
            continue
        if bound == 0:
            if type(item) is not str:
                return False
        elif not is_int(item, 1, bound):
            return False
    return True


def is_json_object(value: object) -> bool:
    """A dict with str keys of what `json.loads` makes (and GGUF metadata: the same kinds),
    nested at most `MAX_NESTING` deep and `MAX_CONTAINERS` in all; walked a level at a time,
    without recursion."""
    if type(value) is not dict:
        return False
    level: list[object] = [value]
    walked = 1
    for _ in range(MAX_NESTING):
        deeper: list[object] = []
        for item in level:
            if type(item) is dict:
                if not _all_of(_STR, item):
                    return False
                deeper += [v for v in item.values() if type(v) not in _SCALARS]
            elif type(item) is list:
                deeper += [v for v in item if type(v) not in _SCALARS]
            else:
                return False  # a tuple, a set, bytes: json.loads makes none
        if not deeper:
            return True
        walked += len(deeper)
        if walked > MAX_CONTAINERS:
            return False
        level = deeper
    return False


def is_folder_stamps(value: object) -> bool:
    """`index.FolderStamps`: (relative folder, inode, mtime_ns, ctime_ns) each; the repo's own
    folder is the empty name. (A handful per record: a plain loop is quickest.)"""
    if type(value) is not tuple:
        return False
    rels: list[str] = []
    for stamp in value:
        if type(stamp) is not tuple or len(stamp) != 4:
            return False
        rel, ino, mtime, ctime = stamp
        if type(rel) is not str or type(ino) is not int:
            return False
        if type(mtime) is not int or type(ctime) is not int:
            return False
        if rel:
            rels.append(rel)
    return are_relative(tuple(rels))


def is_refs_layout(value: object) -> bool:
    """`index.refs_with_layout`'s layout: (folder stamps, ref file names, (name, inode, size,
    mtime_ns, ctime_ns, commit) of each ref file read), or None."""
    if value is None:
        return True
    if type(value) is not tuple or len(value) != 3 or not is_folder_stamps(value[0]):
        return False
    known = value[2]
    return are_relative(value[1]) and type(known) is tuple and all(map(_is_ref_stamp, known))


def _is_ref_stamp(value: object) -> bool:
    if type(value) is not tuple or len(value) != 6:
        return False
    name, commit = value[0], value[5]
    return (
        type(name) is str
        and type(commit) is str
        and len(commit) <= MAX_REF
        and _all_of(_INT, value[1:5])
    )


def is_chosen(value: object) -> bool:
    """`hfwalk.ChosenScan`'s fields as a tuple (see `CatalogIndex.remember_repo`)."""
    if type(value) is not tuple or len(value) != 7:
        return False
    size, files, incomplete, broken, chosen_size, chosen_files, others = value
    return (
        is_int(size)
        and are_relative(files)
        and is_int(incomplete)
        and is_strs(broken)
        and (chosen_size is None or is_int(chosen_size))
        and (chosen_files is None or is_int(chosen_files))
        and (
            others is None
            or (are_relative(others) and "." not in others and "/" not in "".join(others))
        )
    )


_STR: frozenset[type] = frozenset({str})
_INT: frozenset[type] = frozenset({int})
MAX_REF = 256  # characters of a ref file's text (`hfcache.read_small` reads 256 bytes)


MODELSCOPE = "modelscope"  # the kind of a ModelScope model's record (see `msdetail`)


def _is_label(value: object) -> bool:
    return value is None or (type(value) is str and 0 < len(value) <= 256 and value.isprintable())


def is_modelscope(record: object) -> bool:
    """A ModelScope model's record, but for its described part (`describe.decode` checks it):
    (kind, folder stamps, (names of the files read, their stamps), (files, size, incomplete,
    problems), described, (id its .mdl names, revision its .mv names))."""
    if type(record) is not tuple or len(record) != 6 or record[0] != MODELSCOPE:
        return False
    _, folders, inputs, walk, _, markers = record
    if not is_folder_stamps(folders) or type(inputs) is not tuple or len(inputs) != 2:
        return False
    if not are_relative(inputs[0]) or type(walk) is not tuple or len(walk) != 4:
        return False
    files, size, incomplete, problems = walk
    if not (are_relative(files) and is_int(size) and is_int(incomplete) and is_strs(problems)):
        return False
    return type(markers) is tuple and len(markers) == 2 and all(map(_is_label, markers))


def shared_strings(value: Any) -> Any:
    """`value` (plain tuples, lists, dicts and scalars) with each distinct string one object.

    Pickle writes an object it has seen as a back-reference, but equal strings from separate
    listings and `json.loads` calls are separate objects: the same config keys and file names
    are written once per model. Made one object, they are written once: the index of 1,000
    cache repos and 1,000 ModelScope models went from 2.6 to 1.2 MB and its load (part of
    every warm scan) from 28 to 16 ms, for a walk of ~45 ms on each (rarer) save, of which
    pickling the smaller file pays back ~15.
    """
    seen: dict[str, str] = {}
    share = seen.setdefault

    def walk(item: Any) -> Any:
        kind = type(item)
        if kind is str:
            return share(item, item)
        if kind is tuple:
            return tuple([walk(x) for x in item])
        if kind is list:
            return [walk(x) for x in item]
        if kind is dict:
            return {walk(k): walk(v) for k, v in item.items()}
        return item

    try:
        return walk(value)
    except RecursionError:  # a config.json nested hundreds deep: stored as it is
        return value
