"""`vllm-console models`: the catalog as a table, or as JSON for scripts."""

from __future__ import annotations

import json
import os
import sys

from vllm_console.config import Settings
from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.core.catalog.index import default_index_path
from vllm_console.core.catalog.scan import scan
from vllm_console.core.text import visible

COLUMNS = ("MODEL", "PARAMS", "DTYPE/QUANT", "CONTEXT", "SIZE", "SOURCE", "STATUS")


def _row(entry: ModelEntry) -> tuple[str, ...]:
    cells = (
        entry.id,
        entry.params_text(),
        entry.dtype_text(),
        entry.context_text(),
        entry.size_text(),
        str(entry.source),
        entry.status_text(),
    )
    # A model's name comes from a folder's name: whatever bytes someone put there.
    return tuple(visible(cell) for cell in cells)


def render_table(entries: tuple[ModelEntry, ...]) -> str:
    rows = [COLUMNS, *(_row(entry) for entry in entries)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def cmd_models(settings: Settings, *, as_json: bool) -> int:
    index = default_index_path(settings.home, os.environ)
    result = scan(
        settings.hf_hub_cache,
        settings.model_dirs,
        index_path=index,
        ms_cache=settings.modelscope_cache,
    )
    for warning in result.warnings:
        print(f"warning: {visible(str(warning))}", file=sys.stderr)
    entries = tuple(sorted(result.entries, key=lambda e: (e.id.lower(), str(e.source))))
    if as_json:
        print(json.dumps([entry.to_json() for entry in entries], indent=2))
    elif entries:
        print(render_table(entries))
    if not entries:
        places = ", ".join(visible(str(path)) for path in result.looked_in)
        print(f"No models found. Looked in: {places}", file=sys.stderr if as_json else sys.stdout)
    return 0
