"""Every use of another library's private API, in one place, each with why it is worth it.

Private names (Textual's, huggingface_hub's, CPython's) can change in any release. Here each
one has a single user-facing function, a comment saying what it buys, and a test in
`tests/test_compat.py` that fails loudly when the library changes under it (the name is
gone, its signature or behaviour is not what this module expects). Nothing else in the
package may import a library's private module or name (a ruff rule and
`tests/test_private_names.py` hold that line).

`core` imports this module, and core must never import textual: textual and huggingface_hub
are imported inside the functions that need them, never at import time.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from textual.widgets import DataTable
    from textual.widgets._footer import FooterKey

T = TypeVar("T")

# -- CPython: pathlib ----------------------------------------------------------------------

# `parent / name` for a name read from a directory listing (one component, no separator).
# On Python 3.11 `/` parses the name again and joins part lists: 2.6 µs a path, a fifth of the
# catalog's listing time with two paths per repo and one per snapshot. `Path.iterdir` makes
# its children with `_make_child_relpath`, which trusts the name instead (0.6 µs); that is
# used where this Python's `Path` has it (3.11, 3.12), `/` elsewhere. The paths are equal.
# Bound once, not wrapped: a wrapper's call would cost what the shortcut saves.
child_path: Callable[[Path, str], Path] = getattr(Path, "_make_child_relpath", Path.__truediv__)


# -- CPython: dataclasses ------------------------------------------------------------------


def bare_instance(cls: type[T]) -> tuple[T, dict[str, Any]]:
    """An instance of the frozen dataclass `cls` made without running `__init__`, and the
    `__dict__` its fields go in: the caller sets every field there (defaults included).

    A frozen dataclass's `__init__` sets each field through `object.__setattr__`, 3-5 times
    slower than filling the dict; the catalog makes entries and revisions by the thousand.
    (Handing over a whole dict instead measured slower again: building it and replacing
    `__dict__` cost more than the stores.) This relies on how dataclasses store fields (in the
    instance `__dict__`: no `__slots__`, no `__post_init__`), which the test checks against
    `__init__`'s own result.
    """
    made = object.__new__(cls)
    return made, made.__dict__


# -- CPython: the garbage collector ----------------------------------------------------------


class gc_paused:
    """`with compat.gc_paused(): ...`: no cyclic collection inside the block.

    The catalog allocates containers by the thousand (entries, paths, parsed JSON) and leaves
    no cycles behind, so every collection it triggers finds nothing, and a full one walks
    everything the process holds (a tenth to a quarter of a 1,000-repo listing in a process
    that has imported the hub library). Collection comes back on after the block if it was on.
    Nesting and other threads are harmless: the worst case is a collection that runs anyway.
    """

    __slots__ = ("_was_on",)

    def __enter__(self) -> None:
        self._was_on = gc.isenabled()
        gc.disable()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._was_on:
            gc.enable()


def gc_off_for_imports() -> None:
    """Turn collection off while Textual and the app are imported: it finds next to nothing
    there and costs ~30 ms of the first frame. `gc_freeze_imports` turns it back on."""
    gc.disable()


def gc_freeze_imports() -> None:
    """Move everything imported so far out of the collector's reach, then collect again.

    What is imported by the console's start lives as long as the process; without the freeze
    the first full collection (the first frame's allocations trigger one) walks all of it,
    ~50 ms on a 2-core box.
    """
    gc.freeze()
    gc.enable()


# -- Textual ---------------------------------------------------------------------------------


def footer_key_type() -> type[FooterKey]:
    """The widget Textual's `Footer` makes for each key (not exported by `textual.widgets`).

    The console's footer gives each key the footer's `compact` value before it mounts, so
    the key is not restyled twice per binding (see `widgets/footer.py`); that needs the type.
    """
    from textual.widgets._footer import FooterKey

    return FooterKey


def datatable_rows_changed(table: DataTable[Any]) -> bool:
    """Have `table` drop its rendered lines and measure itself again, after a column's width
    was changed in place; False (nothing done) where this Textual lacks the internals, and
    the caller then clears and adds the rows again.

    There is no public way to resize a column: clearing and adding every row again took
    ~0.4 s with 1,000 models on the way to the first list; this takes next to nothing.
    """
    clear_caches = getattr(table, "_clear_caches", None)
    if clear_caches is None or not hasattr(table, "_require_update_dimensions"):
        return False
    clear_caches()
    table._require_update_dimensions = True
    table.refresh()
    return True


# -- huggingface_hub -------------------------------------------------------------------------
# The download resumes partial files itself and then hands over to `snapshot_download`, so it
# must leave exactly what the library leaves: its metadata files, its locks, its links.


def hf_local_etag(local_dir: Path, filename: str) -> str | None:
    """The etag the library recorded for a file it downloaded into a plain folder, if any."""
    from huggingface_hub._local_folder import read_download_metadata

    known = read_download_metadata(local_dir, filename)
    return None if known is None else str(known.etag)


def hf_record_local_download(local_dir: Path, filename: str, commit_hash: str, etag: str) -> None:
    """What the library writes after a download into a plain folder: `snapshot_download`
    then trusts the file as it is instead of fetching it again."""
    from huggingface_hub._local_folder import write_download_metadata

    write_download_metadata(local_dir, filename, commit_hash=commit_hash, etag=etag)


# `huggingface_hub.utils` re-exports these two from private modules under TYPE_CHECKING
# without `as`, so a type checker calls them not exported: hence the ignores.


def hf_headers(token: str | None) -> dict[str, str]:
    """The headers the library sends with each request (user agent, token)."""
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

    return dict(build_hf_headers(token=token))


def hf_file_lock(path: Path) -> AbstractContextManager[object]:
    """The lock the library takes for a file while it downloads it (undocumented)."""
    from huggingface_hub.utils import WeakFileLock  # type: ignore[attr-defined]

    lock: AbstractContextManager[object] = WeakFileLock(path)
    return lock


def hf_link_blob(blob: Path, pointer: Path) -> None:
    """snapshots/<sha>/<name> -> blobs/<etag>, made by the library's own helper (relative
    links, and a copy where the file system has no links, as the library does)."""
    from huggingface_hub.file_download import _create_symlink

    _create_symlink(str(blob), str(pointer), new_blob=False)


def hf_write_tree_cache(
    folder: Path, commit: str, files: Mapping[str, tuple[int, str, str | None, int | None]]
) -> bool:
    """Write the tree listing `snapshot_download` would fetch for `commit` (no timeout on
    that request), from name -> (size, blob id, LFS sha256, LFS size). False where this
    huggingface_hub has no tree cache (older ones list the tree themselves)."""
    try:
        from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache
    except ImportError:
        return False
    entries = {name: TreeCacheEntry(*values) for name, values in files.items()}
    write_tree_cache(str(folder), commit, entries)
    return True


def hf_xet_available() -> bool:
    """Whether the hf_xet package is installed, as the library itself decides it."""
    from huggingface_hub.utils._runtime import is_xet_available

    return bool(is_xet_available())


# -- modelscope ------------------------------------------------------------------------------


def ms_silence_bars() -> None:
    """The library's download draws tqdm bars on stderr (a files bar and one per file) and
    takes no bar class: its module's `tqdm` becomes one that draws nothing. The console shows
    its own progress, fed by the library's public progress callbacks. Idempotent; this process
    uses the library for nothing else."""
    import modelscope_hub._download as download
    from tqdm import tqdm

    if not getattr(getattr(download, "tqdm", None), "silenced", False):

        class Silent(tqdm):  # type: ignore[misc]
            silenced = True

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **{**kwargs, "disable": True})

        setattr(download, "tqdm", Silent)  # noqa: B010  (not an exported name)
