"""Processes holding GPU memory that should not: after a stop, or leftovers before a launch.

Lists each holder (GPU, PID, name, memory) and offers to kill the ones with a PID. Memory
found only by the change since launch (NVML shows no PID of ours, as inside containers) is
listed too but cannot be killed from here: the dialog says so. Dismisses with True to kill.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from vllm_console.core.gpu.owners import Holder
from vllm_console.core.text import visible

NO_PID_NOTE = (
    "NVML shows no PID for this memory (inside a container it may list the host's PIDs): "
    "look for the process with nvidia-smi on the host."
)


def killable(holders: Sequence[Holder]) -> list[int]:
    """The distinct PIDs among `holders`, in order."""
    return list(dict.fromkeys(h.pid for h in holders if h.pid is not None))


class GpuHoldersScreen(ModalScreen[bool]):
    """A title, one line per holder, and Kill / Leave."""

    DEFAULT_CSS = Path(__file__).with_name("gpu_holders.tcss").read_text(encoding="utf-8")

    BINDINGS = [
        Binding(
            "k",
            "kill",
            "Kill them",
            id="holders.kill",
            tooltip="Kill these processes to free the GPU memory they hold",
        ),
        Binding(
            "escape",
            "leave",
            "Leave them",
            id="holders.leave",
            tooltip="Leave them running; their memory stays taken",
        ),
    ]

    def __init__(self, title: str, holders: Sequence[Holder], note: str = "") -> None:
        super().__init__()
        self._title = title
        self.holders = tuple(holders)
        self._note = note
        self.pids = killable(self.holders)

    def compose(self) -> ComposeResult:
        with Vertical(id="holders-dialog"):
            yield Static(Content(visible(self._title)), id="holders-title")
            # Each holder is described by its process name, which any program chooses.
            lines = [visible(f"• {h.describe()}") for h in self.holders]
            yield Static(Content("\n".join(lines)), id="holders-list")
            notes = [visible(self._note)] if self._note else []
            if any(h.pid is None for h in self.holders):
                notes.append(NO_PID_NOTE)
            if notes:
                yield Static(Content("\n".join(notes)), id="holders-note")
            with Horizontal(id="holders-buttons"):
                if self.pids:
                    pids = ", ".join(str(p) for p in self.pids)
                    yield Button(f"Kill {pids} (k)", id="holders-kill", variant="error")
                yield Button("Leave them (esc)", id="holders-leave")

    def on_mount(self) -> None:
        self.query_one("#holders-leave", Button).focus()

    def action_kill(self) -> None:
        if self.pids:
            self.dismiss(True)

    def action_leave(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed, "#holders-kill")
    def _kill_pressed(self) -> None:
        self.action_kill()

    @on(Button.Pressed, "#holders-leave")
    def _leave_pressed(self) -> None:
        self.action_leave()


def ask_to_kill(
    app: App[Any], title: str, holders: Sequence[Holder], answer: Callable[[list[int]], None]
) -> None:
    """Show the holders; `answer` gets the PIDs to kill, or an empty list to leave them."""
    screen = GpuHoldersScreen(title, holders)
    app.push_screen(screen, lambda kill: answer(screen.pids if kill else []))
