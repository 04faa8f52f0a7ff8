"""Checks that plain data read back from the catalog index is what the catalog writes there.

The index file is bytes on disk: its unpickler makes nothing but builtin containers and
scalars, and these checks make sure they have the shapes and bounds the catalog's own records
have before any of it reaches an entry (a string where a number should be, a 10,000-deep
tuple, a 150-digit size, a ref name with `..` in it). A record that fails is not used: the
entry is read from its files again, as if the index did not know it.
"""

from __future__ import annotations

from vllm_console.core.catalog.meta import FIELD_NAMES
from vllm_console.core.catalog.readers.numbers import MAX_CONTEXT, MAX_COUNT, MAX_DIM, MAX_PARAMS

MAX_NESTING = 64  # of a stored config.json (real ones nest 3 or 4 deep)
MAX_SIZE = 1 << 62  # bytes of a repo, a count of files

_META_BOUNDS = {
    "params": MAX_PARAMS,
    "context_length": MAX_CONTEXT,
    "num_layers": MAX_COUNT,
    "num_kv_heads": MAX_COUNT,
    "head_dim": MAX_DIM,
}
_BOUNDS = tuple(_META_BOUNDS.get(name, 0) for name in FIELD_NAMES)  # 0: a str field
_SCALARS = (str, int, float, bool, type(None))


def is_int(value: object, low: int = 0, high: int = MAX_SIZE) -> bool:
    return type(value) is int and low <= value <= high


def is_strs(value: object) -> bool:
    """A tuple of strings (file names, problems, refs)."""
    return type(value) is tuple and all(type(item) is str for item in value)


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
    nested at most `MAX_NESTING` deep; walked without recursion."""
    if type(value) is not dict:
        return False
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if type(item) is dict:
            if depth >= MAX_NESTING or not all(type(k) is str for k in item):
                return False
            children = item.values()
        elif type(item) is list:
            if depth >= MAX_NESTING:
                return False
            children = item  # type: ignore[assignment]
        else:
            continue
        for child in children:
            if type(child) in _SCALARS:
                continue
            stack.append((child, depth + 1))
    return True


def is_folder_stamps(value: object) -> bool:
    """`index.FolderStamps`: (relative folder, inode, mtime_ns, ctime_ns) each."""
    if type(value) is not tuple:
        return False
    for stamp in value:
        if type(stamp) is not tuple or len(stamp) != 4 or not is_relative(stamp[0]):
            return False
        if not all(type(n) is int for n in stamp[1:]):
            return False
    return True


def is_relative(value: object) -> bool:
    """A path below a folder of the repo: no NUL, not absolute, no `..` part."""
    if type(value) is not str or "\0" in value or value.startswith("/"):
        return False
    return ".." not in value.split("/")


def is_refs_layout(value: object) -> bool:
    """`index.refs_with_layout`'s layout: (folder stamps, ref file names), or None."""
    if value is None:
        return True
    if type(value) is not tuple or len(value) != 2 or not is_folder_stamps(value[0]):
        return False
    names = value[1]
    return type(names) is tuple and all(is_relative(name) and name for name in names)


def is_chosen(value: object) -> bool:
    """`hfwalk.ChosenScan`'s fields as a tuple (see `CatalogIndex.remember_repo`)."""
    if type(value) is not tuple or len(value) != 7:
        return False
    size, files, incomplete, broken, chosen_size, chosen_files, others = value
    return (
        is_int(size)
        and type(files) is tuple
        and all(is_relative(name) for name in files)
        and is_int(incomplete)
        and is_strs(broken)
        and (chosen_size is None or is_int(chosen_size))
        and (chosen_files is None or is_int(chosen_files))
        and (others is None or (is_strs(others) and all(map(_is_snapshot_name, others))))
    )


def _is_snapshot_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name
