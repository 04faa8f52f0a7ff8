"""The model browser inside a small host app: rows, live fill-in, filter, sort, empty state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Input, Static
from textual.widgets.data_table import ColumnKey

from vllm_console.config import Settings
from vllm_console.core.catalog.port import Catalog
from vllm_console.widgets.models.browser import ModelBrowser


class BrowserHost(App[None]):
    def __init__(self, settings: Settings, catalog: Catalog | None) -> None:
        super().__init__()
        self.settings, self.catalog = settings, catalog
        self.highlighted: list[object] = []
        self.detailed_batches = 0

    def compose(self) -> ComposeResult:
        yield ModelBrowser(self.settings, catalog=self.catalog, id="browser")

    def on_model_browser_highlighted(self, message: ModelBrowser.Highlighted) -> None:
        self.highlighted.append(message.entry)


def row_ids(app: App[None]) -> list[str]:
    table = app.query_one(DataTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def settle(app: App[None], pilot: object) -> None:
    """Until the scan is over: it starts only after the first frame."""
    browser = app.query_one(ModelBrowser)
    await pilot.pause()  # type: ignore[attr-defined]
    while browser.scanning or not browser.table.columns:
        await app.workers.wait_for_complete()
        await pilot.pause()  # type: ignore[attr-defined]


async def test_rows_appear_first_then_fill_in(settings: Settings, demo_catalog: Any) -> None:
    catalog = demo_catalog
    catalog.gate.clear()  # hold the details back: only the fast listing arrives
    app = BrowserHost(settings, catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        table = app.query_one(DataTable)
        assert table.row_count == len(catalog.entries)
        assert "scanning" in str(table.get_row_at(0)[-1])
        assert str(table.get_row_at(0)[4]) == "…"  # no size yet
        catalog.gate.set()
        await settle(app, pilot)
        assert "scanning" not in " ".join(str(row[-1]) for row in map(table.get_row_at, range(8)))
        assert str(table.get_row_at(0)[4]).endswith("GiB")


async def test_detailed_entries_are_applied_in_batches(
    settings: Settings,
    fake_catalog: Any,
    make_folder_entry: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entries = [make_folder_entry(f"model-{i:03}", params=i * 1000) for i in range(300)]
    app = BrowserHost(settings, fake_catalog(entries))
    refreshes = 0
    original = ModelBrowser.refresh_rows

    def counting(self: ModelBrowser, changed: Any = None) -> None:
        nonlocal refreshes
        refreshes += 1
        original(self, changed)

    monkeypatch.setattr(ModelBrowser, "refresh_rows", counting)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        table = app.query_one(DataTable)
        assert table.row_count == 300
        assert all("ok" in str(table.get_row_at(i)[-1]) for i in range(300))
        assert refreshes < 30  # coalesced: not one table update per entry
        # A batch rewrites its own rows only, not all 300 (that starved a big scan)
        browser = app.query_one(ModelBrowser)
        updated: list[str] = []
        update_cell = table.update_cell

        def tracking(row_key: Any, column_key: Any, value: Any, **kwargs: Any) -> None:
            updated.append(str(row_key))
            update_cell(row_key, column_key, value, **kwargs)

        monkeypatch.setattr(table, "update_cell", tracking)
        changed = browser.entries[7]
        browser.post_message(ModelBrowser.Detailed(browser._generation, (changed,)))
        await pilot.pause()
        assert updated and set(updated) == {changed.key}


async def test_name_column_follows_the_width_without_rebuilding_rows(
    settings: Settings, demo_catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = BrowserHost(settings, demo_catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        browser = app.query_one(ModelBrowser)
        table = app.query_one(DataTable)
        table.move_cursor(row=3)
        rows, cells = row_ids(app), [str(c) for c in table.get_row_at(3)]
        clears: list[bool] = []
        clear = table.clear

        def counting(columns: bool = False) -> Any:
            clears.append(columns)
            return clear(columns)

        monkeypatch.setattr(table, "clear", counting)
        name = table.columns[ColumnKey("name")]
        wide = name.width
        await pilot.resize_terminal(110, 40)
        await pilot.pause()
        assert name.width == browser._name_width == wide - 10
        assert clears == [] and row_ids(app) == rows and table.cursor_row == 3
        assert [str(c) for c in table.get_row_at(3)] == cells
        assert table.virtual_size.width < 120  # measured again: no scrolling sideways
        await pilot.resize_terminal(70, 40)  # the optional columns go: a rebuild
        await pilot.pause()
        assert clears[:1] == [True] and row_ids(app) == rows
        assert len(table.columns) < len(cells)


async def test_filter_narrows_rows(settings: Settings, demo_catalog: Any) -> None:
    catalog = demo_catalog
    app = BrowserHost(settings, catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.query_one(ModelBrowser).focus_filter()
        await pilot.press(*"qwen")
        assert row_ids(app) == [
            "Qwen/Qwen2.5-7B-Instruct",
            "Qwen2.5-32B-Instruct-AWQ",
            "DeepSeek-R1-Distill-Qwen-14B",
        ]  # the catalog's order
        await pilot.press("space", *"awq")
        assert row_ids(app) == ["Qwen2.5-32B-Instruct-AWQ"]
        await pilot.press("escape")
        assert app.query_one(Input).value == ""
        assert len(row_ids(app)) == len(catalog.entries)


async def test_filter_without_match_says_so(settings: Settings, demo_catalog: Any) -> None:
    catalog = demo_catalog
    app = BrowserHost(settings, catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.query_one(ModelBrowser).focus_filter()
        await pilot.press(*"nothing-like-this")
        assert app.query_one(ModelBrowser).has_class("-empty")
        assert "No model matches" in str(app.query_one("#model-empty", Static).render())


async def test_sort_by_key_and_header(settings: Settings, demo_catalog: Any) -> None:
    catalog = demo_catalog
    app = BrowserHost(settings, catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.query_one(DataTable).focus()
        browser = app.query_one(ModelBrowser)
        await pilot.press("o")  # by name
        assert browser.sort_column == "name"
        names = row_ids(app)
        assert names == sorted(names, key=str.lower)
        await pilot.press("O")
        assert row_ids(app) == names[::-1]
        browser.sort_column, browser.sort_reverse = "size", True
        await pilot.pause()
        assert row_ids(app)[0] == "Qwen2.5-32B-Instruct-AWQ"  # 18.3 GiB, the largest
        # Clicking a header sorts by that column; clicking it again reverses.
        table = app.query_one(DataTable)
        table.post_message(
            DataTable.HeaderSelected(
                table,
                table.columns[ColumnKey("params")].key,
                1,
                table.columns[ColumnKey("params")].label,
            )
        )
        await pilot.pause()
        assert browser.sort_column == "params" and not browser.sort_reverse
        ids = row_ids(app)
        assert ids[0] == "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
        assert ids[-1] == "my-finetune"  # unknown params sort last


async def test_highlight_reports_the_entry(settings: Settings, demo_catalog: Any) -> None:
    catalog = demo_catalog
    app = BrowserHost(settings, catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.query_one(DataTable).focus()
        await pilot.press("down")
        await pilot.pause()
        last = app.highlighted[-1]
        assert last is not None and last.id == row_ids(app)[1]  # type: ignore[attr-defined]


async def test_empty_state_explains_where_it_looked(settings: Settings, fake_catalog: Any) -> None:
    app = BrowserHost(settings, fake_catalog([]))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        browser = app.query_one(ModelBrowser)
        assert browser.has_class("-empty")
        text = str(app.query_one("#model-empty", Static).render())
        assert "No models found" in text
        assert str(settings.hf_hub_cache) in text and "Hugging Face cache" in text
        assert "VLLM_CONSOLE_MODEL_DIRS" in text and "--model-dirs" in text
        assert "press d to download" in text


async def test_scan_warnings_are_shown(
    settings: Settings, fake_catalog: Any, demo_models: list[Any]
) -> None:
    catalog = fake_catalog(demo_models, warnings=["cannot read /srv/models: permission denied"])
    app = BrowserHost(settings, catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert any("permission denied" in n.message for n in app._notifications)


async def test_rescan_picks_up_a_new_folder(
    settings: Settings, tmp_path: Path, model_folder: Callable[..., Path]
) -> None:
    model_folder(tmp_path / "models" / "first-model")
    app = BrowserHost(settings, None)  # the real catalog, on real folders
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert row_ids(app) == ["first-model"]
        model_folder(tmp_path / "models" / "second-model")
        app.query_one(ModelBrowser).rescan()
        await settle(app, pilot)
        assert row_ids(app) == ["first-model", "second-model"]
        table = app.query_one(DataTable)
        assert all("ok" in str(table.get_row_at(i)[-1]) for i in range(2))


# -- the fit column ------------------------------------------------------------------------


def gpu_snapshot(*gib: float, used: float = 0.5) -> Any:
    from tests.fakes.fake_nvml import FakeDevice, FakeNvml
    from vllm_console.core.gpu.nvml import Sampler

    devices = [FakeDevice(total=int(g * (1 << 30)), used=int(used * (1 << 30))) for g in gib]
    return Sampler(FakeNvml(devices)).sample_once()


async def fits_worked_out(app: App[None], pilot: Any) -> None:
    """Until the fit workers are done and their verdicts are in the table."""
    await app.workers.wait_for_complete()
    await pilot.pause()


def column(app: App[None], key: str) -> dict[str, str]:
    """Model id -> the text of that column, for every row."""
    table = app.query_one(DataTable)
    return {
        str(table.get_cell_at(Coordinate(i, 0))): str(
            table.get_cell(table.coordinate_to_cell_key(Coordinate(i, 0))[0], key)
        )
        for i in range(table.row_count)
    }


async def test_fit_column_appears_with_gpus_and_follows_free_memory(
    settings: Settings, demo_catalog: Any
) -> None:
    app = BrowserHost(settings, demo_catalog)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(app, pilot)
        browser = app.query_one(ModelBrowser)
        table = app.query_one(DataTable)
        assert "fit" not in [str(k.value) for k in table.columns]  # no GPU known: no column
        browser.set_gpus(gpu_snapshot(24))
        await fits_worked_out(app, pilot)
        assert [str(k.value) for k in table.columns][-2:] == ["fit", "status"]
        fits = column(app, "fit")
        assert fits["Qwen/Qwen2.5-7B-Instruct"] == "fits"
        assert fits["TinyLlama/TinyLlama-1.1B-Chat-v1.0"] == "fits"
        assert fits["my-finetune"] == "?"  # nothing known to estimate from
        assert fits["Qwen2.5-32B-Instruct-AWQ"] in ("tight", "won't fit")
        # a process takes most of the GPU: the 7B no longer fits
        browser.set_gpus(gpu_snapshot(24, used=16))
        await fits_worked_out(app, pilot)
        assert column(app, "fit")["Qwen/Qwen2.5-7B-Instruct"] == "won't fit"
        # sorting by fit puts what fits first and the unknown last
        browser.sort_column = "fit"
        await pilot.pause()
        order = [column(app, "fit")[name] for name in row_ids(app)]
        ranks = {"fits": 0, "tight": 1, "won't fit": 2, "?": 3, "…": 3}
        assert [ranks[v] for v in order] == sorted(ranks[v] for v in order)
        # the GPUs go away (the driver fails): the column goes, the sort falls back
        browser.set_gpus(None)
        await pilot.pause()
        assert "fit" not in [str(k.value) for k in table.columns]
        assert browser.sort_column is None


async def test_fit_column_is_recomputed_only_when_free_memory_moves(
    settings: Settings, demo_catalog: Any
) -> None:
    app = BrowserHost(settings, demo_catalog)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(app, pilot)
        browser = app.query_one(ModelBrowser)
        browser.set_gpus(gpu_snapshot(80))
        await fits_worked_out(app, pilot)
        first = browser.fits
        browser.set_gpus(gpu_snapshot(80, used=0.6))  # 100 MiB more: same verdicts
        await fits_worked_out(app, pilot)
        assert browser.fits is first
        browser.set_gpus(gpu_snapshot(80, used=8))
        await fits_worked_out(app, pilot)
        assert browser.fits is not first


async def test_fits_are_worked_out_off_the_ui_thread(
    settings: Settings, demo_catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thousand models take ~0.1 s of will_it_fit: never on the event loop's thread."""
    import threading

    from vllm_console.widgets.models import feed as feed_module
    from vllm_console.widgets.models.fits import work_out_fits

    threads: list[threading.Thread] = []

    def recording(job: Any) -> Any:
        threads.append(threading.current_thread())
        return work_out_fits(job)

    monkeypatch.setattr(feed_module, "work_out_fits", recording)
    app = BrowserHost(settings, demo_catalog)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(app, pilot)
        browser = app.query_one(ModelBrowser)
        browser.set_gpus(gpu_snapshot(24))
        await fits_worked_out(app, pilot)
        assert column(app, "fit")["Qwen/Qwen2.5-7B-Instruct"] == "fits"
    assert threads and threading.main_thread() not in threads


# -- GGUF repos split by the complete scan -------------------------------------------------


class GatedCatalog:
    """The real catalog, its details held back until `gate` is set."""

    def __init__(self) -> None:
        import threading

        from vllm_console.core.catalog import scan

        self.gate = threading.Event()
        self.list_models, self.detail = scan.list_models, scan.detail
        self._iter = scan.iter_detailed

    def iter_detailed(self, entries: Any, index_path: Path | None = None) -> Any:
        self.gate.wait(10)
        return self._iter(entries, index_path=index_path)


async def test_a_repo_of_quantizations_becomes_their_rows(settings: Settings) -> None:
    from tests.fakes.cachegen import (
        FakeRevision,
        commit_hash,
        gguf_bytes,
        llama_gguf_metadata,
        llama_gguf_tensors,
        write_cache_repo,
    )

    def gguf(file_type: int) -> bytes:
        return gguf_bytes(llama_gguf_metadata(file_type=file_type), llama_gguf_tensors())

    files = {"t-Q4_K_M.gguf": gguf(15), "t-Q8_0.gguf": gguf(7), "tokenizer.json": b"{}"}
    repo = "org/tiny-quants"  # not named GGUF: the first list shows the repo as one row
    write_cache_repo(
        settings.hf_hub_cache, repo, [FakeRevision(commit_hash(repo), files, ("main",))]
    )
    catalog = GatedCatalog()
    app = BrowserHost(settings, catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        assert row_ids(app) == [repo]
        catalog.gate.set()
        await settle(app, pilot)
        assert row_ids(app) == [f"{repo}:Q4_K_M", f"{repo}:Q8_0"]
        browser = app.query_one(ModelBrowser)
        catalog.gate.clear()  # a rescan lists the repo again: its quantizations stay
        browser.rescan()
        await pilot.pause(0.3)
        assert browser.scanning and row_ids(app) == [f"{repo}:Q4_K_M", f"{repo}:Q8_0"]
        catalog.gate.set()
        await settle(app, pilot)
        assert row_ids(app) == [f"{repo}:Q4_K_M", f"{repo}:Q8_0"]
        snapshot = settings.hf_hub_cache / "models--org--tiny-quants" / "snapshots"
        (snapshot / commit_hash(repo) / "t-Q8_0.gguf").unlink()  # one quantization left
        browser.rescan()
        await settle(app, pilot)
        assert row_ids(app) == [repo]
        assert "Q4_K_M" in " ".join(str(c) for c in app.query_one(DataTable).get_row_at(0))
