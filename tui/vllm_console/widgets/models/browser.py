"""The model browser: a filterable, sortable table of the models on disk, filled in live.

The fast listing puts rows on screen at once; thread workers then detail each entry and work
out its fit (`feed.py`, the browser's base), so the UI never waits for the disk. The table's
columns and rows are laid out by `table.py`; this module decides what it shows: filter, sort,
the fit column while GPUs are known, the empty state, and the highlighted model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Input, Static
from textual.widgets.data_table import Column, ColumnKey

from vllm_console import compat
from vllm_console.config import Settings
from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.core.catalog.port import Catalog
from vllm_console.core.text import visible
from vllm_console.widgets.models import rows as model_rows
from vllm_console.widgets.models.empty_state import empty_state_text
from vllm_console.widgets.models.feed import CatalogFeed
from vllm_console.widgets.models.rows import CellStyles
from vllm_console.widgets.models.table import ModelTable, fitting_columns, name_width

if TYPE_CHECKING:
    from vllm_console.core.gpu.nvml import GpuSnapshot


class ModelBrowser(CatalogFeed):
    """Filter input, model table and empty state; reports the highlighted model upwards."""

    DEFAULT_CSS = Path(__file__).with_name("browser.tcss").read_text(encoding="utf-8")

    BINDINGS = [
        Binding(
            "o",
            "cycle_sort",
            "Sort",
            id="browser.sort",
            tooltip="Sort by the next column (name, params, size, …) or click a column header",
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

    sort_column: reactive[str | None] = reactive(None, init=False)
    sort_reverse: reactive[bool] = reactive(False, init=False)

    def __init__(
        self, settings: Settings, *, catalog: Catalog | None = None, id: str | None = None
    ) -> None:
        # Empty until the first listing: the first frame is laid out in that shape already.
        super().__init__(settings, catalog=catalog, id=id, classes="-empty")
        self._styles: CellStyles | None = None
        self._columns: tuple[model_rows.Column, ...] = model_rows.COLUMNS

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Filter models (/)", id="model-filter")
        table = ModelTable(id="model-table")
        table.tooltip = "Click a column header to sort by it"
        yield table
        yield Static("Looking for models…", id="model-empty", markup=False)

    def on_mount(self) -> None:
        # Columns come with the first Resize, once the width is known. The scan starts
        # after the first frame: the scan thread would otherwise compete with the first paint.
        self.call_after_refresh(self.rescan)

    def _add_columns(self) -> None:
        self._columns = self._fitting_columns()
        sort, reverse = self.sort_column, self.sort_reverse
        self.table.add_columns_for(self._columns, self._name_width, sort, reverse)

    def _all_columns(self) -> tuple[model_rows.Column, ...]:
        return model_rows.columns_for(self.gpus_known)

    def _fitting_columns(self) -> tuple[model_rows.Column, ...]:
        return fitting_columns(self._all_columns(), self.content_region.width)

    @property
    def _name_width(self) -> int:
        return name_width(self._all_columns(), self.content_region.width)

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
        resized): set it in place (`compat.datatable_rows_changed` says why and how), else
        the columns and rows are rebuilt."""
        name.width = self._name_width
        if not compat.datatable_rows_changed(self.table):
            self._rebuild_columns()

    def _rebuild_columns(self) -> None:
        self.table.clear(columns=True)
        self._add_columns()
        self.table.row_keys = []
        self.refresh_rows()

    # -- public, called by the App --------------------------------------------------------

    @property
    def table(self) -> ModelTable:
        return self.query_one("#model-table", ModelTable)

    def focus_filter(self) -> None:
        # At once, not via call_later as Widget.focus does: keys typed right after `/`
        # (a paste, a script) must land in the filter, not trigger bindings such as `q`.
        self.screen.set_focus(self.query_one("#model-filter", Input))

    def set_gpus(self, snapshot: GpuSnapshot | None) -> None:
        """The GPU strip's newest snapshot: the fit column follows the GPUs' free memory
        (worked out again in a thread when it moved enough, see `fits.py`)."""
        had = self.gpus_known
        if not self.follow_gpus(snapshot):
            return
        if had != self.gpus_known:
            if not self.gpus_known and self.sort_column == "fit":
                self.sort_column = None  # rebuilds the columns itself
            self._rebuild_columns()

    def select(self, key: str) -> bool:
        """Put the cursor on the entry with this key, clearing a filter that hides it."""
        if key not in self.by_key:
            return False
        if key not in self.table.row_keys:
            self.query_one("#model-filter", Input).value = ""
            self.refresh_rows()
        self.table.move_cursor(row=self.table.row_keys.index(key))
        self.table.focus()
        return True

    # -- rows --------------------------------------------------------------------------------

    def post_catalog(self) -> None:
        self.post_message(self.CatalogChanged(self.entries, self.scanning))

    def _cell_styles(self) -> CellStyles:
        if self._styles is None:
            self._styles = CellStyles.from_variables(self.app.get_css_variables())
        return self._styles

    def refresh_rows(self, changed: Sequence[str] | None = None) -> None:
        """Bring the table in line with entries, filter and sort, keeping the cursor's model;
        `changed`: only these entries changed (see `ModelTable.show_rows`)."""
        table = self.table
        if not table.columns:  # rows before the first Resize (a test host, say)
            self._add_columns()
        query = self.query_one("#model-filter", Input).value
        shown = [e for e in self.by_key.values() if model_rows.matches(e, query)]
        ordered = model_rows.sort_entries(shown, self.sort_column, self.sort_reverse, self.fits)
        table.show_rows(ordered, self._columns, self._cell_styles(), self.fits, changed)
        self._update_empty_state(query)
        self._post_highlight()

    def _post_highlight(self) -> None:
        key = self.table.current_key()
        self.post_message(self.Highlighted(self.by_key.get(key) if key else None))

    def _update_empty_state(self, query: str) -> None:
        empty = self.query_one("#model-empty", Static)
        nothing = not self.by_key
        hidden_by_filter = bool(self.by_key) and not self.table.row_keys
        self.set_class(nothing or hidden_by_filter, "-empty")
        if hidden_by_filter:
            empty.update(
                Content(
                    f"No model matches “{visible(query)}”.\n\nPress escape to clear the filter."
                )
            )
        elif nothing:
            empty.update(self._empty_text())

    def _empty_text(self) -> Content:
        if self.scanning and self.listing is None:
            return Content("Looking for models…")
        if self.listing is not None:
            looked = self.listing.looked_in
        else:
            settings = self.settings
            looked = (settings.hf_hub_cache, settings.modelscope_cache, *settings.model_dirs)
        caches = {
            self.settings.hf_hub_cache: "Hugging Face cache",
            self.settings.modelscope_cache: "ModelScope cache",
        }
        return empty_state_text(looked, caches, self.scanning)

    # -- events and actions -----------------------------------------------------------------

    @on(Input.Changed, "#model-filter")
    def _filter_changed(self) -> None:
        self.refresh_rows()

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
        entry = self.by_key.get(str(event.row_key.value))
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
            return True if len(self.by_key) > 1 else None
        return True

    def watch_sort_column(self) -> None:
        self._apply_sort()

    def watch_sort_reverse(self) -> None:
        self._apply_sort()

    def _apply_sort(self) -> None:
        self._rebuild_columns()  # the header shows the sort column and direction

    def watch_scanning(self) -> None:
        self.refresh_bindings()
