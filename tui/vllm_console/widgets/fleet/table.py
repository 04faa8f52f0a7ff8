"""The fleet table: one row per member, keyed by its name, cells from `cells.py`.

A row is added on first show and afterwards only its changed cells are written (the phase's
clock changes every second; the rest rarely); the columns widen when a text grows.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from vllm_console.widgets.fleet.cells import COLUMNS, MemberRow, cells

Shown = dict[str, tuple[str, str]]  # column -> (plain text, style) last written


class FleetTable(DataTable[Text]):
    """Members as rows; the cursor's row is the selected member."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._shown: dict[str, Shown] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, row: MemberRow, now: float | None = None) -> None:
        """Add the member's row, or write the cells that changed."""
        texts = cells(row, now)
        new = {key: (text.plain, str(text.style)) for key, text in texts.items()}
        old = self._shown.get(row.name)
        if old is None:
            self.add_row(*(texts[key] for key, _ in COLUMNS), key=row.name)
        else:
            for key, value in new.items():
                before = old.get(key)
                if before != value:
                    wider = before is None or len(value[0]) > len(before[0])
                    self.update_cell(row.name, key, texts[key], update_width=wider)
        self._shown[row.name] = new

    def move_to(self, name: str) -> None:
        self.move_cursor(row=self.get_row_index(name))
