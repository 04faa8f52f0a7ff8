"""The model browser: a filterable, sortable table of the models on disk, filled in live.

The fast listing puts rows on screen at once; a thread worker then details each entry
(metadata, sizes, problems) and posts them in batches, so the table changes a few times a
second at most however many models there are, and the UI never waits for the disk. With GPUs
known, the fit column's verdicts are worked out in thread workers too (`fits.py`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Input, Static
from textual.widgets.data_table import Column, ColumnKey
from textual.worker import get_current_worker

from vllm_console.config import Settings
from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.widgets.models import rows as model_rows
from vllm_console.widgets.models.catalog_port import (
    Catalog,
    ScanLike,
    default_catalog,
    empty_state_text,
    iter_detailed,
)
from vllm_console.widgets.models.fits import FitJob, GpuFits, work_out_fits
from vllm_console.widgets.models.rows import CellStyles
from vllm_console.widgets.worker_errors import ReportsWorkerErrors

if TYPE_CHECKING:
    from vllm_console.core.gpu.fit import Fit
    from vllm_console.core.gpu.nvml import GpuSnapshot

# Detailed entries are applied to the table at most this often (seconds).
BATCH_INTERVAL = 0.25
MIN_NAME_WIDTH = 20
# Enough for ids such as meta-llama/Llama-3.1-8B-Instruct; below it optional columns go.
WANTED_NAME_WIDTH = 32


class ModelTable(DataTable[object]):
    """The model table; enter on a row is "launch this model", and the footer says so."""

    BINDINGS = [Binding("enter", "select_cursor", "Launch", id="browser.launch")]


class ModelBrowser(ReportsWorkerErrors, Vertical):
    """Filter input, model table and empty state; reports the highlighted model upwards."""

    BINDINGS = [
        Binding(
            "o",
            "cycle_sort",
            "Sort",
            id="browser.sort",
            tooltip="Sort by the next column (or click a column header)",
        ),
        Binding(
            "O",
            "reverse_sort",
            "Reverse",
            id="browser.reverse",
            tooltip="Reverse the sort order",
            show=False,
        ),
    ]

    class Highlighted(Message):
        """The model under the cursor changed (or its details arrived); None: no rows."""

        def __init__(self, entry: ModelEntry | None) -> None:
            super().__init__()
            self.entry = entry

    class Chosen(Message):
        """Enter (or a click) on a row: the user wants to launch this model."""

        def __init__(self, entry: ModelEntry) -> None:
            super().__init__()
            self.entry = entry

    class CatalogChanged(Message):
        """The set of entries or the scanning state changed."""

        def __init__(self, entries: tuple[ModelEntry, ...], scanning: bool) -> None:
            super().__init__()
            self.entries = entries
            self.scanning = scanning

    class Listed(Message):
        """Worker -> browser: the fast listing of scan number `generation`."""

        bubble = False

        def __init__(self, generation: int, result: ScanLike) -> None:
            super().__init__()
            self.generation, self.result = generation, result

    class Detailed(Message):
        """Worker -> browser: a batch of detailed entries."""

        bubble = False

        def __init__(self, generation: int, entries: tuple[ModelEntry, ...]) -> None:
            super().__init__()
            self.generation, self.entries = generation, entries

    class ScanFinished(Message):
        """Worker -> browser: the scan ended; `error` is set if it could not run at all."""

        bubble = False

        def __init__(self, generation: int, error: str | None = None) -> None:
            super().__init__()
            self.generation, self.error = generation, error

    class FitsWorkedOut(Message):
        """Fit worker -> browser: verdicts by entry key, for the GPUs of `generation`."""

        bubble = False

        def __init__(self, generation: int, fits: dict[str, Fit]) -> None:
            super().__init__()
            self.generation, self.fits = generation, fits

    scanning: reactive[bool] = reactive(False)
    sort_column: reactive[str | None] = reactive(None, init=False)
    sort_reverse: reactive[bool] = reactive(False, init=False)

    def __init__(
        self, settings: Settings, *, catalog: Catalog | None = None, id: str | None = None
    ) -> None:
        # Empty until the first listing: the first frame is laid out in that shape already.
        super().__init__(id=id, classes="-empty")
        self._settings = settings
        self._catalog = catalog
        self._generation = 0
        self._entries: dict[str, ModelEntry] = {}
        self._visible: list[str] = []
        self._result: ScanLike | None = None
        self._pending_select: tuple[Path | None, str | None] | None = None
        self._styles: CellStyles | None = None
        self._columns: tuple[model_rows.Column, ...] = model_rows.COLUMNS
        self._gpu_fits = GpuFits()

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Filter models (/)", id="model-filter")
        table = ModelTable(id="model-table", cursor_type="row", zebra_stripes=True)
        table.tooltip = "Click a column header to sort by it"
        yield table
        yield Static("Looking for models…", id="model-empty", markup=False)

    def on_mount(self) -> None:
        # Columns come with the first Resize, once the width is known. The scan starts
        # after the first frame: the scan thread would otherwise compete with the first paint.
        self.call_after_refresh(self.rescan)

    def _add_columns(self) -> None:
        table = self.table
        self._columns = self._fitting_columns()
        name_width = self._name_width
        for column in self._columns:
            width = name_width if column.key == "name" else column.width
            label = model_rows.header_label(column, self.sort_column, self.sort_reverse)
            table.add_column(label, key=column.key, width=width)

    def _name_width_with(self, columns: tuple[model_rows.Column, ...]) -> int:
        others = sum(column.width or 0 for column in columns if column.key != "name")
        padding = 2 * len(columns) + 2  # cell padding, and the vertical scrollbar
        return self.content_region.width - others - padding

    def _all_columns(self) -> tuple[model_rows.Column, ...]:
        return model_rows.columns_for(self._gpu_fits.gpus is not None)

    def _fitting_columns(self) -> tuple[model_rows.Column, ...]:
        """All columns if the names still fit; else without the optional ones (Source)."""
        columns = self._all_columns()
        if self._name_width_with(columns) >= WANTED_NAME_WIDTH:
            return columns
        return tuple(column for column in columns if not column.optional)

    @property
    def _name_width(self) -> int:
        """The name column takes the width the other columns leave (they are fixed)."""
        return max(MIN_NAME_WIDTH, self._name_width_with(self._fitting_columns()))

    def on_resize(self) -> None:
        name = self.table.columns.get(ColumnKey("name"))
        if name is None:
            self._add_columns()
        elif self._columns != self._fitting_columns():
            self._rebuild_columns()
        elif name.width != self._name_width:
            self._set_name_width(name)

    def _set_name_width(self, name: Column) -> None:
        """Only the name column's width changes (the side panel came, the terminal was
        resized): set it in place. Clearing and adding every row again, as a change of
        columns needs, took ~0.4 s with 1,000 models, on the way to the first list. There is
        no public way: this empties the table's render caches and has it measure itself again
        (its own internals, checked to be there; else the rows are rebuilt)."""
        table = self.table
        clear_caches = getattr(table, "_clear_caches", None)
        if clear_caches is None or not hasattr(table, "_require_update_dimensions"):
            self._rebuild_columns()
            return
        name.width = self._name_width
        clear_caches()
        table._require_update_dimensions = True
        table.refresh()

    def _rebuild_columns(self) -> None:
        self.table.clear(columns=True)
        self._add_columns()
        self._visible = []
        self._refresh_rows()

    # -- public, called by the App --------------------------------------------------------

    @property
    def entries(self) -> tuple[ModelEntry, ...]:
        return tuple(self._entries.values())

    @property
    def table(self) -> DataTable[object]:
        return self.query_one("#model-table", DataTable)

    def focus_filter(self) -> None:
        # At once, not via call_later as Widget.focus does: keys typed right after `/`
        # (a paste, a script) must land in the filter, not trigger bindings such as `q`.
        self.screen.set_focus(self.query_one("#model-filter", Input))

    def rescan(self, *, select_path: Path | None = None, select_id: str | None = None) -> None:
        """Scan again; optionally select the model at `select_path` (or named `select_id`)."""
        if select_path is not None or select_id is not None:
            self._pending_select = (select_path, select_id)
        self._generation += 1
        self.scanning = True
        self._post_catalog()
        self._scan(self._generation)

    @property
    def fits(self) -> dict[str, Fit]:
        """The fit column's verdicts by entry key, as far as they are worked out."""
        return self._gpu_fits.fits

    def set_gpus(self, snapshot: GpuSnapshot | None) -> None:
        """The GPU strip's newest snapshot: the fit column follows the GPUs' free memory
        (worked out again in a thread when it moved enough, see `fits.py`)."""
        had = self._gpu_fits.gpus is not None
        if not self._gpu_fits.follow(snapshot):
            return
        self._work_out_fits(self._entries.values())
        if had != (self._gpu_fits.gpus is not None):
            if self._gpu_fits.gpus is None and self.sort_column == "fit":
                self.sort_column = None  # rebuilds the columns itself
            self._rebuild_columns()

    def _work_out_fits(self, entries: Iterable[ModelEntry]) -> None:
        settings = self._settings
        job = self._gpu_fits.job(
            entries,
            os.environ.get("CUDA_VISIBLE_DEVICES"),
            settings.gpu_memory_utilization,
            settings.max_model_len,
        )
        if job is not None:
            self._fit(job)

    @work(thread=True, group="model-fits", exit_on_error=False)
    def _fit(self, job: FitJob) -> None:
        self.post_message(self.FitsWorkedOut(job.generation, work_out_fits(job)))

    @on(FitsWorkedOut)
    def _on_fits(self, message: FitsWorkedOut) -> None:
        if self._gpu_fits.worked_out(message.generation, message.fits):
            self._refresh_rows(changed=list(message.fits))

    def select(self, key: str) -> bool:
        """Put the cursor on the entry with this key, clearing a filter that hides it."""
        if key not in self._entries:
            return False
        if key not in self._visible:
            self.query_one("#model-filter", Input).value = ""
            self._refresh_rows()
        self.table.move_cursor(row=self._visible.index(key))
        self.table.focus()
        return True

    # -- the worker ------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="catalog-scan", exit_on_error=False)
    def _scan(self, generation: int) -> None:
        worker = get_current_worker()
        try:
            catalog = self._catalog or default_catalog()
            result = catalog.list_models(self._settings.hf_hub_cache, self._settings.model_dirs)
        except Exception as exc:  # the catalog never should raise; say so plainly if it does
            self.post_message(self.ScanFinished(generation, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.Listed(generation, result))
        batch: list[ModelEntry] = []
        last_post = time.monotonic()
        from vllm_console.core.catalog.index import default_index_path

        index_path = default_index_path(self._settings.home, os.environ)
        detailed = iter_detailed(catalog, result.entries, index_path)
        try:
            for entry in detailed:
                if worker.is_cancelled:
                    return
                batch.append(entry)
                if time.monotonic() - last_post >= BATCH_INTERVAL:
                    self.post_message(self.Detailed(generation, tuple(batch)))
                    batch, last_post = [], time.monotonic()
        finally:
            close = getattr(detailed, "close", None)
            if close is not None:
                close()  # a generator's pool stops with it: a rescan does not wait for it
        if batch:
            self.post_message(self.Detailed(generation, tuple(batch)))
        self.post_message(self.ScanFinished(generation))

    @on(Listed)
    def _on_listed(self, message: Listed) -> None:
        if message.generation != self._generation:
            return
        self._result = message.result
        old = self._entries
        # Keep what an earlier scan learned until the new details arrive: no flicker to "…".
        self._entries = {
            entry.key: old.get(entry.key, entry) if not entry.detailed else entry
            for entry in message.result.entries
        }
        if message.result.warnings:
            self.notify(
                "\n".join(message.result.warnings),
                title="Some folders could not be read",
                severity="warning",
                timeout=8,
            )
        self._refresh_rows()
        self._post_catalog()

    @on(Detailed)
    def _on_detailed(self, message: Detailed) -> None:
        if message.generation != self._generation:
            return
        for entry in message.entries:
            self._entries[entry.key] = entry
        self._work_out_fits(message.entries)
        self._refresh_rows(changed=[entry.key for entry in message.entries])
        self._post_catalog()

    @on(ScanFinished)
    def _on_scan_finished(self, message: ScanFinished) -> None:
        if message.generation != self._generation:
            return
        self.scanning = False
        if message.error:
            self.notify(message.error, title="Scan failed", severity="error", timeout=10)
        self._select_pending()
        self._refresh_rows()
        self._post_catalog()

    # -- rows --------------------------------------------------------------------------------

    def _post_catalog(self) -> None:
        self.post_message(self.CatalogChanged(self.entries, self.scanning))

    def _select_pending(self) -> None:
        if self._pending_select is None:
            return
        path, repo_id = self._pending_select
        self._pending_select = None
        for entry in self._entries.values():
            if path is not None and (
                entry.path == path or path in entry.path.parents or entry.path in path.parents
            ):
                self.select(entry.key)
                return
        for entry in self._entries.values():
            if repo_id is not None and entry.id == repo_id:
                self.select(entry.key)
                return

    def _cell_styles(self) -> CellStyles:
        if self._styles is None:
            self._styles = CellStyles.from_variables(self.app.get_css_variables())
        return self._styles

    def _refresh_rows(self, changed: Sequence[str] | None = None) -> None:
        """Bring the table in line with entries, filter and sort, keeping the cursor's model.

        `changed`: only these entries changed (a batch of details). If the order stays, only
        their rows are rewritten: rewriting all of a thousand rows for every batch kept the UI
        thread so busy that the scan behind it crawled."""
        table = self.table
        if not table.columns:  # rows before the first Resize (a test host, say)
            self._add_columns()
        query = self.query_one("#model-filter", Input).value
        shown = [e for e in self._entries.values() if model_rows.matches(e, query)]
        ordered = model_rows.sort_entries(shown, self.sort_column, self.sort_reverse, self.fits)
        keys = [entry.key for entry in ordered]
        styles = self._cell_styles()
        current = self._current_key()
        if keys == self._visible and len(table.rows) == len(keys):
            if changed is not None:
                ordered = [self._entries[k] for k in changed if k in table.rows]
            for entry in ordered:
                cells = model_rows.row_cells(entry, styles, self._columns, self.fits.get(entry.key))
                for column_key, cell in cells:
                    table.update_cell(entry.key, column_key, cell)
        else:
            table.clear()
            for entry in ordered:
                cells = model_rows.row_cells(entry, styles, self._columns, self.fits.get(entry.key))
                table.add_row(*(cell for _, cell in cells), key=entry.key)
            self._visible = keys
            if current in keys:
                table.move_cursor(row=keys.index(current), animate=False)
        self._update_empty_state(query)
        self._post_highlight()

    def _current_key(self) -> str | None:
        table = self.table
        if not self._visible or not 0 <= table.cursor_row < len(self._visible):
            return None
        return self._visible[table.cursor_row]

    def _post_highlight(self) -> None:
        key = self._current_key()
        self.post_message(self.Highlighted(self._entries.get(key) if key else None))

    def _update_empty_state(self, query: str) -> None:
        empty = self.query_one("#model-empty", Static)
        nothing = not self._entries
        hidden_by_filter = bool(self._entries) and not self._visible
        self.set_class(nothing or hidden_by_filter, "-empty")
        if hidden_by_filter:
            empty.update(
                Content(f"No model matches “{query}”.\n\nPress escape to clear the filter.")
            )
        elif nothing:
            empty.update(self._empty_text())

    def _empty_text(self) -> Content:
        if self.scanning and self._result is None:
            return Content("Looking for models…")
        if self._result is not None:
            looked = self._result.looked_in
        else:
            looked = (self._settings.hf_hub_cache, *self._settings.model_dirs)
        return empty_state_text(looked, self._settings.hf_hub_cache, self.scanning)

    # -- events and actions -----------------------------------------------------------------

    @on(Input.Changed, "#model-filter")
    def _filter_changed(self) -> None:
        self._refresh_rows()

    @on(Input.Submitted, "#model-filter")
    def _filter_submitted(self) -> None:
        self.table.focus()

    def key_escape(self) -> None:
        field = self.query_one("#model-filter", Input)
        if field.has_focus and not field.value:
            self.table.focus()
        field.value = ""

    def key_down(self) -> None:
        if self.query_one("#model-filter", Input).has_focus:
            self.table.focus()

    @on(DataTable.RowHighlighted, "#model-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._post_highlight()

    @on(DataTable.RowSelected, "#model-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        entry = self._entries.get(str(event.row_key.value))
        if entry is not None:
            self.post_message(self.Chosen(entry))

    @on(DataTable.HeaderSelected, "#model-table")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = str(event.column_key.value)
        if key == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = key, False

    def action_cycle_sort(self) -> None:
        keys = [column.key for column in self._all_columns()]
        index = keys.index(self.sort_column) + 1 if self.sort_column in keys else 0
        self.sort_column = keys[index] if index < len(keys) else None
        self.sort_reverse = False

    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("cycle_sort", "reverse_sort"):
            return True if len(self._entries) > 1 else None
        return True

    def watch_sort_column(self) -> None:
        self._apply_sort()

    def watch_sort_reverse(self) -> None:
        self._apply_sort()

    def _apply_sort(self) -> None:
        self._rebuild_columns()  # the header shows the sort column and direction

    def watch_scanning(self) -> None:
        self.refresh_bindings()
