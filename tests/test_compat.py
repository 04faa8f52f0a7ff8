"""Every private API `vllm_console.compat` leans on is still there and does what it expects.

Each test names the library and the private name: when one fails after an upgrade, the
function in compat.py with that name needs a new way (or its shortcut dropped).
"""

from __future__ import annotations

import dataclasses
import gc
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.reactive import Reactive
from textual.widget import Widget
from textual.widgets import DataTable

from vllm_console import compat

# -- pathlib ----------------------------------------------------------------------------------


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="3.13's Path has no such shortcut")
def test_pathlib_child_shortcut_is_used() -> None:
    assert compat.child_path is getattr(Path, "_make_child_relpath", None)


@pytest.mark.parametrize("parent", [Path("."), Path("/"), Path("hub"), Path("/a/b")])
def test_child_paths_equal_joined_paths(parent: Path) -> None:
    child, joined = compat.child_path(parent, "models--a--b"), parent / "models--a--b"
    assert (child, str(child), child.parts, hash(child)) == (
        joined,
        str(joined),
        joined.parts,
        hash(joined),
    )


# -- dataclasses ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()


def test_bare_dataclass_instance_is_what_init_makes() -> None:
    made, fields = compat.bare_instance(Point)
    fields.update(x=1, y=0, tags=("a",))
    real = Point(1, tags=("a",))
    assert vars(made) == vars(real)
    assert (made, hash(made), repr(made)) == (real, hash(real), repr(real))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.x = 2  # type: ignore[misc]
    assert "__slots__" not in vars(Point) and not hasattr(Point, "__post_init__")


# -- gc -----------------------------------------------------------------------------------------


def test_gc_paused_restores_what_it_found() -> None:
    was_on = gc.isenabled()
    try:
        gc.enable()
        with compat.gc_paused():
            assert not gc.isenabled()
            with compat.gc_paused():
                assert not gc.isenabled()
            assert not gc.isenabled()
        assert gc.isenabled()
        gc.disable()
        with compat.gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        (gc.enable if was_on else gc.disable)()


def test_gc_off_for_imports_then_frozen() -> None:
    """In a fresh interpreter: freezing is for the whole process."""
    code = (
        "import gc, json\n"
        "from vllm_console import compat\n"
        "compat.gc_off_for_imports()\n"
        "off = not gc.isenabled()\n"
        "compat.gc_freeze_imports()\n"
        "print(json.dumps([off, gc.isenabled(), gc.get_freeze_count()]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    off, on_again, frozen = json.loads(out.stdout)
    assert off and on_again and frozen > 1000


def test_compat_does_not_import_textual_or_the_hub() -> None:
    """core imports compat, and core must never import textual."""
    code = (
        "import sys\n"
        "import vllm_console.compat\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('textual', 'rich', 'huggingface_hub')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- Textual ----------------------------------------------------------------------------------


def test_textual_footer_key_type() -> None:
    """`textual.widgets._footer.FooterKey`: a widget with a `compact` reactive (the footer's
    own behaviour with it is `tests/widgets/test_footer.py`)."""
    footer_key = compat.footer_key_type()
    assert footer_key.__name__ == "FooterKey" and issubclass(footer_key, Widget)
    assert isinstance(inspect.getattr_static(footer_key, "compact"), Reactive)


class TableHost(App[None]):
    def compose(self) -> ComposeResult:
        yield DataTable()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("Name", width=10, key="name")
        table.add_column("Size", width=6, key="size")
        for i in range(5):
            table.add_row(f"model-{i}", str(i))


async def test_textual_datatable_measures_a_resized_column_again() -> None:
    """`DataTable._clear_caches` and `_require_update_dimensions`: without them a column
    whose width changed in place keeps its old size and lines."""
    app = TableHost()
    async with app.run_test(size=(80, 12)) as pilot:
        await pilot.pause()
        table = app.query_one(DataTable)
        before = table.virtual_size.width
        table.columns[next(iter(table.columns))].width = 30
        await pilot.pause()
        assert table.virtual_size.width == before  # nothing notices by itself
        assert compat.datatable_rows_changed(table)
        await pilot.pause()
        assert table.virtual_size.width == before + 20


# -- huggingface_hub --------------------------------------------------------------------------


def test_hub_local_download_metadata(tmp_path: Path) -> None:
    """`huggingface_hub._local_folder.read_/write_download_metadata`."""
    (tmp_path / "config.json").write_text("{}")
    assert compat.hf_local_etag(tmp_path, "config.json") is None
    compat.hf_record_local_download(tmp_path, "config.json", "a" * 40, "etag-1")
    assert compat.hf_local_etag(tmp_path, "config.json") == "etag-1"
    assert (tmp_path / ".cache" / "huggingface" / "download" / "config.json.metadata").is_file()


def test_hub_file_lock(tmp_path: Path) -> None:
    """`huggingface_hub.utils.WeakFileLock` (from `utils._fixes`)."""
    lock = tmp_path / "locks" / "x.lock"
    lock.parent.mkdir()
    with compat.hf_file_lock(lock):
        assert lock.exists()


def test_hub_headers() -> None:
    """`huggingface_hub.utils.build_hf_headers` (from `utils._headers`)."""
    headers = compat.hf_headers("hf_secret")
    assert headers["authorization"] == "Bearer hf_secret" and "user-agent" in headers


def test_hub_blob_link(tmp_path: Path) -> None:
    """`huggingface_hub.file_download._create_symlink`: a relative link, as the cache has."""
    blob = tmp_path / "blobs" / "abc"
    blob.parent.mkdir()
    blob.write_text("weights")
    pointer = tmp_path / "snapshots" / ("c" * 40) / "model.safetensors"
    pointer.parent.mkdir(parents=True)
    compat.hf_link_blob(blob, pointer)
    assert pointer.is_symlink() and not Path(pointer.readlink()).is_absolute()
    assert pointer.read_text() == "weights"


def test_hub_tree_cache(tmp_path: Path) -> None:
    """`huggingface_hub._tree_cache`: the listing `snapshot_download` reads instead of asking."""
    files = {"config.json": (2, "b1", None, None), "model.safetensors": (9, "b2", "f" * 64, 9)}
    assert compat.hf_write_tree_cache(tmp_path, "c" * 40, files)
    written = json.loads((tmp_path / "trees" / f"{'c' * 40}.json").read_text())
    assert written["files"] == {
        "config.json": {"size": 2, "blob_id": "b1"},
        "model.safetensors": {"size": 9, "blob_id": "b2", "lfs_sha256": "f" * 64, "lfs_size": 9},
    }


def test_hub_xet_probe() -> None:
    """`huggingface_hub.utils._runtime.is_xet_available`."""
    assert isinstance(compat.hf_xet_available(), bool)


# -- modelscope -------------------------------------------------------------------------------


def test_modelscope_download_bars_are_silenced(capsys: pytest.CaptureFixture[str]) -> None:
    import modelscope_hub._download as download

    compat.ms_silence_bars()
    compat.ms_silence_bars()  # idempotent: one subclass, not a tower of them
    bar_class = getattr(download, "tqdm")  # noqa: B009  (the name its bars are drawn with)
    assert getattr(bar_class, "silenced", False)
    assert not getattr(bar_class.__mro__[1], "silenced", False)
    with bar_class(total=3, desc="Downloading", unit="file") as bar:
        bar.update(3)
    assert capsys.readouterr().err == ""
