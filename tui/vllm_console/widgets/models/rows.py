"""How catalog entries become table rows: the columns, their cells, filtering and sort order.

Pure functions over `ModelEntry`, so the browser widget stays about events and workers,
and the ordering rules can be read (and tested) in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import JustifyMethod
from rich.style import Style
from rich.text import Text

from vllm_console.core.catalog.entry import ModelEntry, Source
from vllm_console.core.text import visible

if TYPE_CHECKING:
    from vllm_console.core.gpu.fit import Fit


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int | None
    # None means "unknown": such rows sort last in both directions.
    sort_key: Callable[[ModelEntry], Any]
    justify: JustifyMethod = "left"
    optional: bool = False  # left out when the table is too narrow for the names


def _status_rank(entry: ModelEntry) -> tuple[int, str]:
    if not entry.detailed:
        return (1, "")
    return (2, entry.problems[0].lower()) if entry.problems else (0, "")


_SOURCE_SHORT = {Source.HF_CACHE: "cache", Source.MODELSCOPE: "ms", Source.FOLDER: "folder"}


def source_text(entry: ModelEntry) -> str:
    return _SOURCE_SHORT[entry.source]


_DTYPE_SHORT = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "float8": "fp8"}


def dtype_text(entry: ModelEntry) -> str:
    """The quantization method if any, else the weights' dtype, in its short spelling."""
    text = entry.dtype_text()
    return _DTYPE_SHORT.get(text.lower(), text)


COLUMNS: tuple[Column, ...] = (
    Column("name", "Model", None, lambda e: e.id.lower()),  # takes the width left over
    Column("params", "Params", 6, lambda e: e.meta.params, "right"),
    Column("dtype", "Dtype", 7, lambda e: dtype_text(e).lower()),
    Column("context", "Ctx", 5, lambda e: e.meta.context_length, "right"),
    Column("size", "Size", 9, lambda e: e.size_bytes, "right"),
    Column("source", "Source", 6, source_text, optional=True),
    Column("status", "Status", 10, _status_rank),
)
# Shown only while the GPU strip reports GPUs: whether the model fits them as the settings
# would launch it. Its order comes from the fits the browser holds, not from the entry.
FIT_COLUMN = Column("fit", "Fit", 9, lambda e: None)
FIT_RANK = {"fits": 0, "tight": 1, "won't fit": 2}
COLUMN_KEYS: tuple[str, ...] = tuple(column.key for column in COLUMNS)
COLUMNS_BY_KEY: Mapping[str, Column] = {column.key: column for column in (*COLUMNS, FIT_COLUMN)}


def columns_for(with_fit: bool) -> tuple[Column, ...]:
    """The columns, with the fit column before the status when GPUs are known."""
    if not with_fit:
        return COLUMNS
    return (*COLUMNS[:-1], FIT_COLUMN, COLUMNS[-1])


def haystack(entry: ModelEntry) -> str:
    """The text a filter query is matched against."""
    parts = (
        entry.id,
        str(entry.path),
        source_text(entry),
        entry.dtype_text(),
        dtype_text(entry),
        entry.meta.architecture or "",
        entry.meta.model_type or "",
    )
    return " ".join(parts).lower()


def matches(entry: ModelEntry, query: str) -> bool:
    """Every word of the query must occur somewhere in the entry's text."""
    words = query.lower().split()
    if not words:  # no filter: every refresh of a big list asks this of every entry
        return True
    text = haystack(entry)
    return all(word in text for word in words)


def sort_entries(
    entries: Iterable[ModelEntry],
    column: str | None,
    reverse: bool,
    fits: Mapping[str, Fit] | None = None,
) -> list[ModelEntry]:
    """Entries in display order; `column` None keeps the catalog's own order."""
    ordered = list(entries)
    if column is None:
        return ordered[::-1] if reverse else ordered
    key = COLUMNS_BY_KEY[column].sort_key
    if column == "fit":
        by_key = fits or {}

        def fit_rank(e: ModelEntry) -> Any:
            fit = by_key.get(e.key)
            return FIT_RANK.get(str(fit.verdict)) if fit is not None else None

        key = fit_rank
    known = [e for e in ordered if key(e) is not None]
    unknown = [e for e in ordered if key(e) is None]
    known.sort(key=key, reverse=reverse)
    return known + unknown


@dataclass(frozen=True)
class CellStyles:
    """Styles for cells, taken from the theme's variables so colour stays in the theme."""

    ok: Style
    warning: Style
    muted: Style
    error: Style

    @classmethod
    def from_variables(cls, variables: Mapping[str, str]) -> CellStyles:
        def style(name: str, fallback: str) -> Style:
            try:
                return Style.parse(variables.get(name, fallback).split()[0])
            except Exception:  # a theme may hold values rich does not parse (e.g. "auto 60%")
                return Style.parse(fallback)

        return cls(
            style("text-success", "green"),
            style("text-warning", "yellow"),
            style("foreground-muted", "grey50"),
            style("text-error", "red"),
        )


def status_cell(entry: ModelEntry, styles: CellStyles) -> Text:
    if not entry.detailed:
        return Text("scanning…", style=styles.muted)
    if entry.problems:
        count = len(entry.problems)
        return Text(f"⚠ {count} issue{'s' if count > 1 else ''}", style=styles.warning)
    return Text("ok", style=styles.ok)


def fit_cell(fit: Fit | None, styles: CellStyles) -> Text:
    if fit is None:
        return Text("…", style=styles.muted)
    verdict = str(fit.verdict)
    style = {"fits": styles.ok, "tight": styles.warning, "won't fit": styles.error}
    return Text("?" if verdict == "unknown" else verdict, style=style.get(verdict, styles.muted))


def row_cells(
    entry: ModelEntry,
    styles: CellStyles,
    columns: tuple[Column, ...] = COLUMNS,
    fit: Fit | None = None,
) -> tuple[tuple[str, Text], ...]:
    """(column key, cell) for one row, in `columns` order. Text, never str: ids may hold '['.

    An id is a folder's name: its control characters are shown as escapes, never sent to the
    terminal.
    """
    pending = styles.muted if not entry.detailed else Style()
    values = {
        "name": Text(visible(entry.id), no_wrap=True, overflow="ellipsis"),
        "params": Text(entry.params_text() if entry.detailed else "…", style=pending),
        "dtype": Text(visible(dtype_text(entry)) if entry.detailed else "…", style=pending),
        "context": Text(entry.context_text() if entry.detailed else "…", style=pending),
        "size": Text(entry.size_text(), style=pending),
        "source": Text(source_text(entry)),
        "status": status_cell(entry, styles),
        "fit": fit_cell(fit, styles),
    }
    cells = []
    for column in columns:
        text = values[column.key]
        text.justify = column.justify
        cells.append((column.key, text))
    return tuple(cells)


def header_label(column: Column, sort_column: str | None, reverse: bool) -> Text:
    if column.key != sort_column:
        return Text(column.label, justify=column.justify)
    arrow = "▼" if reverse else "▲"
    return Text(f"{column.label} {arrow}", justify=column.justify)
