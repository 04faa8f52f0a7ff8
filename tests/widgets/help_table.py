"""The help screen's key tables as the user reads them: section title -> rows of text."""

from __future__ import annotations

import io
import re
from typing import Any

from rich.console import Console
from textual.screen import Screen
from textual.widgets import Static

WIDE = 400  # wide enough that no explanation wraps: one binding, one line


def help_rows(screen: Screen[Any]) -> dict[str, list[tuple[str, ...]]]:
    """Each section's rows as (key, description, explanation), in the order shown."""
    rows: dict[str, list[tuple[str, ...]]] = {}
    title = ""
    for static in screen.query("#help-body > Static").results(Static):
        if static.has_class("help-section"):
            title = str(static.render())
            rows[title] = []
        elif static.has_class("help-keys"):
            console = Console(width=WIDE, file=io.StringIO(), record=True, color_system=None)
            console.print(static.content)
            for line in console.export_text().splitlines():
                if line.strip():
                    rows[title].append(tuple(re.split(r" {2,}", line.strip())))
    return rows


def help_text(screen: Screen[Any]) -> str:
    """Every row of every section, one per line."""
    return "\n".join("  ".join(row) for section in help_rows(screen).values() for row in section)
