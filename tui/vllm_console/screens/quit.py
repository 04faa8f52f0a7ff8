"""Asked on quit while servers run: stop them all, leave them all running, or stay."""

from __future__ import annotations

from collections.abc import Sequence
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
    "Leaving them running keeps the models loaded after the console exits. Each run is "
    "recorded with its name, its log keeps being written, and the next console offers to "
    "attach to them all or stop them."
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
            tooltip="Stop every server, wait for their GPU memory to come back, then quit",
        ),
        Binding(
            "l",
            "choose('leave')",
            "Leave running",
            id="quit.leave",
            tooltip="Quit and leave every server running; the next console can attach to them",
        ),
        Binding("escape", "cancel", "Cancel", id="quit.cancel", tooltip="Stay in the console"),
    ]

    def __init__(self, names: Sequence[str]) -> None:
        """`names`: the servers that run (the fleet's members' names)."""
        super().__init__()
        self._names = tuple(names)

    def compose(self) -> ComposeResult:
        many = len(self._names) > 1
        # Names come from users and files: shown as they are, never as markup.
        shown = ", ".join(visible(name) for name in self._names)
        title = f"{len(self._names)} servers are running: " if many else "A server is running: "
        with Vertical(id="quit-dialog"):
            yield Static(Content.assemble(title, (shown, "bold")), id="quit-title")
            yield Static(LEAVE_NOTE, id="quit-note")
            with Horizontal(id="quit-buttons"):
                them = "them all" if many else "it"
                yield Button(f"Stop {them} and quit (s)", id="quit-stop", variant="error")
                yield Button(f"Leave {them} running (l)", id="quit-leave", variant="primary")
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
