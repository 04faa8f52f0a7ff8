"""The help screen: what the console does and every key, taken from the live bindings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static


@dataclass(frozen=True)
class KeyHelp:
    key: str
    description: str
    detail: str = ""


INTRO = (
    "The console lists the models it finds on disk: the Hugging Face cache and your model "
    "folders. Rows appear at once; sizes, config and problems fill in as they are read."
)

MOUSE = "Click a column header to sort by it (click again to reverse)."


class HelpScreen(ModalScreen[None]):
    """A modal listing the keys; escape, ? or q closes it."""

    DEFAULT_CSS = Path(__file__).with_name("help.tcss").read_text(encoding="utf-8")

    BINDINGS = [
        Binding("escape", "close", "Close", id="help.close"),
        Binding("question_mark", "close", "Close", show=False, id="help.close_question"),
        Binding("q", "close", "Close", show=False, id="help.close_q"),
    ]

    def __init__(self, keys: Sequence[KeyHelp]) -> None:
        super().__init__()
        self._keys = tuple(keys)

    def compose(self) -> ComposeResult:
        width = max((len(k.key) for k in self._keys), default=4) + 2
        lines = [
            Content.assemble((f"{k.key:<{width}}", "bold"), f"{k.description:<12}", k.detail)
            for k in self._keys
        ]
        with Vertical(id="help-dialog"):
            yield Static("vLLM console: keys", id="help-title")
            with VerticalScroll(id="help-body"):
                yield Static(INTRO, classes="help-text")
                yield Static(Content("\n").join(lines), id="help-keys")
                yield Static(MOUSE, classes="help-text")
            yield Static("escape closes this screen", id="help-hint")

    def action_close(self) -> None:
        self.dismiss(None)
