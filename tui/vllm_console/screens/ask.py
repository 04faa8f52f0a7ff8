"""Two small questions the fleet asks: whether to go on (stop all servers), and where to save
the fleet file. Both answer with escape as "no"."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from vllm_console.core.text import visible

Answer = TypeVar("Answer")


class AskScreen(ModalScreen[Answer]):
    """The frame both questions share (ask.tcss)."""

    DEFAULT_CSS = Path(__file__).with_name("ask.tcss").read_text(encoding="utf-8")


class ConfirmScreen(AskScreen[bool]):
    """A question with one action and a cancel; dismisses True for the action."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes", tooltip="Do it"),
        Binding("escape", "answer(False)", "Cancel", id="confirm.cancel", tooltip="Do nothing"),
    ]

    def __init__(self, title: str, text: str, yes: str) -> None:
        """`text` may name servers (user input): shown as text, never as markup."""
        super().__init__()
        self._title, self._text, self._yes = title, text, yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="ask-dialog"):
            yield Static(visible(self._title), classes="ask-title", markup=False)
            yield Static(visible(self._text), classes="ask-note", markup=False)
            with Horizontal(classes="ask-buttons"):
                yield Button(f"{self._yes} (y)", id="ask-yes", variant="error")
                yield Button("Cancel (esc)", id="ask-no")

    def on_mount(self) -> None:
        self.query_one("#ask-yes", Button).focus()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "ask-yes")


class FleetPathScreen(AskScreen[Path | None]):
    """Where to write the fleet file; dismisses with the path (relative to `cwd`) or None."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="fleet_path.cancel", tooltip="Save nothing"),
    ]

    def __init__(self, cwd: Path, default: str = "fleet.yaml") -> None:
        """A relative path is taken from `cwd` (the folder the console was started in)."""
        super().__init__()
        self._default = default
        self._cwd = cwd

    def compose(self) -> ComposeResult:
        with Vertical(classes="ask-dialog"):
            yield Static("Save the fleet", classes="ask-title")
            yield Static(
                "Every server, local and remote, as a fleet file: open it with "
                "`vllm-console --fleet FILE` or start it with `vllm-console up FILE`.",
                classes="ask-note",
                markup=False,
            )
            yield Input(self._default, id="fleet-path")
            with Horizontal(classes="ask-buttons"):
                yield Button("Save (enter)", id="ask-yes", variant="primary")
                yield Button("Cancel (esc)", id="ask-no")

    def on_mount(self) -> None:
        self.query_one("#fleet-path", Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted, "#fleet-path")
    @on(Button.Pressed, "#ask-yes")
    def _save(self) -> None:
        text = self.query_one("#fleet-path", Input).value.strip()
        if not text:
            self.notify("Name a file to save the fleet to.", severity="warning")
            return
        path = Path(text).expanduser()
        self.dismiss(path if path.is_absolute() else self._cwd / path)

    @on(Button.Pressed, "#ask-no")
    def _cancel(self) -> None:
        self.dismiss(None)
