"""Messages that cross widgets (messages a widget sends about itself are nested in it).

Screens and command-palette providers do not reach into the model browser; they post
these to the App, which owns navigation and wires the browser.
"""

from __future__ import annotations

from pathlib import Path

from textual.message import Message


class JumpToModel(Message):
    """Select a model in the browser, by its catalog key (`ModelEntry.key`)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key


class ModelDownloaded(Message):
    """A download finished: rescan, then select the model that lies at `path`."""

    def __init__(self, repo_id: str, path: Path) -> None:
        super().__init__()
        self.repo_id = repo_id
        self.path = path
