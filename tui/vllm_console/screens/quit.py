"""Asked on quit while a server runs: stop it, leave it running, or stay."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from vllm_console.core.text import visible

QuitChoice = Literal["stop", "leave"]

LEAVE_NOTE = (
    "Leaving it running keeps the model loaded after the console exits. The run is "
    "recorded, its log keeps being written, and the next console offers to attach to it "
    "or stop it."
)


class QuitScreen(ModalScreen[QuitChoice | None]):
    """Three choices; escape cancels."""

    DEFAULT_CSS = Path(__file__).with_name("quit.tcss").read_text(encoding="utf-8")

    BINDINGS = [
        Binding(
            "s",
            "choose('stop')",
            "Stop and quit",
            id="quit.stop",
            tooltip="Stop the server, wait for its GPU memory to come back, then quit",
        ),
        Binding(
            "l",
            "choose('leave')",
            "Leave running",
            id="quit.leave",
            tooltip="Quit and leave the server running; the next console can attach to it",
        ),
        Binding("escape", "cancel", "Cancel", id="quit.cancel", tooltip="Stay in the console"),
    ]

    def __init__(self, label: str) -> None:
        super().__init__()
        self._label = label

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-dialog"):
            yield Static(
                Content.assemble("A server is running: ", (visible(self._label), "bold")),
                id="quit-title",
            )
            yield Static(LEAVE_NOTE, id="quit-note")
            with Horizontal(id="quit-buttons"):
                yield Button("Stop it and quit (s)", id="quit-stop", variant="error")
                yield Button("Leave it running (l)", id="quit-leave", variant="primary")
                yield Button("Cancel (esc)", id="quit-cancel")

    def on_mount(self) -> None:
        self.query_one("#quit-stop", Button).focus()

    def action_choose(self, choice: QuitChoice) -> None:
        self.dismiss(choice)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        choices: dict[str | None, QuitChoice | None] = {
            "quit-stop": "stop",
            "quit-leave": "leave",
        }
        self.dismiss(choices.get(event.button.id))
