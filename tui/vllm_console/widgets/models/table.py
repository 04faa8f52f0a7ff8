"""The model browser's table: which columns fit the width, and its rows kept in line.

The browser decides what is shown (entries, filter, sort, fits); `ModelTable` lays it out.
The name column takes the width the fixed columns leave; below `WANTED_NAME_WIDTH` the
optional columns (Source) go. Rows are rewritten in place while their order stays: clearing
and adding a thousand rows for every batch of details kept the UI thread so busy that the
scan behind it crawled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.widgets import DataTable

from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.widgets.models import rows as model_rows
from vllm_console.widgets.models.rows import CellStyles, Column

if TYPE_CHECKING:
    from vllm_console.core.gpu.fit import Fit

MIN_NAME_WIDTH = 20
# Enough for ids such as meta-llama/Llama-3.1-8B-Instruct; below it optional columns go.
WANTED_NAME_WIDTH = 32


def name_width_with(columns: tuple[Column, ...], width: int) -> int:
    """What is left for the name column of `width` cells once the other columns took theirs."""
    others = sum(column.width or 0 for column in columns if column.key != "name")
    padding = 2 * len(columns) + 2  # cell padding, and the vertical scrollbar
    return width - others - padding


def fitting_columns(columns: tuple[Column, ...], width: int) -> tuple[Column, ...]:
    """All columns if the names still fit; else without the optional ones (Source)."""
    if name_width_with(columns, width) >= WANTED_NAME_WIDTH:
        return columns
    return tuple(column for column in columns if not column.optional)


def name_width(columns: tuple[Column, ...], width: int) -> int:
    """The name column takes the width the other columns leave (they are fixed)."""
    return max(MIN_NAME_WIDTH, name_width_with(fitting_columns(columns, width), width))


class ModelTable(DataTable[object]):
    """The model table; enter on a row is "launch this model", and the footer says so."""

    BINDINGS = [
        Binding(
            "enter",
            "select_cursor",
            "Launch",
            id="browser.launch",
            tooltip="The launch dialog for the selected model: fields, command, environment",
        )
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.row_keys: list[str] = []  # the entry keys of the rows, in their order

    def add_columns_for(
        self, columns: tuple[Column, ...], name: int, sort_column: str | None, reverse: bool
    ) -> None:
        """Add `columns`, the name column `name` cells wide, the sort column's header marked."""
        for column in columns:
            width = name if column.key == "name" else column.width
            label = model_rows.header_label(column, sort_column, reverse)
            self.add_column(label, key=column.key, width=width)

    def show_rows(
        self,
        ordered: Sequence[ModelEntry],
        columns: tuple[Column, ...],
        styles: CellStyles,
        fits: Mapping[str, Fit],
        changed: Sequence[str] | None,
    ) -> None:
        """Show `ordered`, keeping the cursor on its model. `changed`: only these entries
        changed (a batch of details); if the order stays, only their rows are rewritten."""
        keys = [entry.key for entry in ordered]
        current = self.current_key()
        if keys == self.row_keys and len(self.rows) == len(keys):
            if changed is not None:
                by_key = {entry.key: entry for entry in ordered}
                ordered = [by_key[k] for k in changed if k in by_key]
            for entry in ordered:
                cells = model_rows.row_cells(entry, styles, columns, fits.get(entry.key))
                for column_key, cell in cells:
                    self.update_cell(entry.key, column_key, cell)
        else:
            self.clear()
            for entry in ordered:
                cells = model_rows.row_cells(entry, styles, columns, fits.get(entry.key))
                self.add_row(*(cell for _, cell in cells), key=entry.key)
            self.row_keys = keys
            if current in keys:
                self.move_cursor(row=keys.index(current), animate=False)

    def current_key(self) -> str | None:
        """The entry key of the row under the cursor; None without rows."""
        if not self.row_keys or not 0 <= self.cursor_row < len(self.row_keys):
            return None
        return self.row_keys[self.cursor_row]
