"""The chat's parts that show text: one message (a Markdown widget each), the log, the prompt.

One Markdown widget per message keeps appends cheap (their cost grows with the document);
the answer's is written through `Markdown.get_stream()`, which merges the pieces that arrive
while it renders, fed in batches by an `Outbox`. The prompt is an Input with a history,
walked with up and down.
"""

from __future__ import annotations

from typing import Protocol

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Input, Markdown

from vllm_console.core.text import visible, visible_lines
from vllm_console.widgets.chat.state import USER


class MessageView(Markdown):
    """One message: its Markdown, "You" or "Assistant · model" in the top border, and a note
    (how the answer went wrong) in the bottom one.

    The message is the Markdown widget itself, not a container around it: every refresh
    lays out each container's children again, and one level less halves that cost for a
    long answer (each of its paragraphs is a widget).
    """

    def __init__(self, role: str, text: str = "", *, model: str | None = None) -> None:
        super().__init__(visible_lines(text), classes=f"message -{role}")
        self.role = role
        # A border title is markup; the model is named by the server.
        title = "You" if role == USER else f"Assistant · {visible(model or '?')}"
        self.border_title = Content(title)
        self._reasoning: Markdown | None = None

    @property
    def markdown(self) -> Markdown:
        return self

    async def reasoning(self) -> Markdown:
        """The muted Markdown for a reasoning model's thoughts, mounted above on first use."""
        if self._reasoning is None:
            self._reasoning = Markdown("", classes="message-reasoning")
            await self.query_ancestor(ChatLog).mount(self._reasoning, before=self)
        return self._reasoning

    @property
    def note(self) -> str:
        return str(self.border_subtitle or "")

    def set_note(self, note: Content | str) -> None:
        self.border_subtitle = note
        self.set_class(bool(str(note)), "-noted")


class ChatLog(VerticalScroll, can_focus=False):
    """The messages, newest last, following the end while an answer streams."""

    def on_mount(self) -> None:
        self.anchor()


class PromptInput(Input):
    """An Input that remembers what was sent: up and down walk back and forth through it."""

    BINDINGS = [
        Binding(
            "enter",
            "submit",
            "Send",
            id="chat.send",
            tooltip="Send the prompt; the answer streams in below the conversation",
        ),
        Binding(
            "up",
            "history(-1)",
            "Previous message",
            show=False,
            id="chat.history_back",
            tooltip="Recall the message sent before (again for older ones)",
        ),
        Binding(
            "down",
            "history(1)",
            "Next message",
            show=False,
            id="chat.history_forward",
            tooltip="Recall the next message sent, then what you were typing",
        ),
    ]

    def __init__(self, *, placeholder: str = "", id: str | None = None) -> None:
        super().__init__(placeholder=placeholder, id=id, compact=True)
        self.history: list[str] = []
        self._index: int | None = None  # None: editing a new message, not a recalled one
        self._draft = ""

    def remember(self, text: str) -> None:
        if text and (not self.history or self.history[-1] != text):
            self.history.append(text)
        self._index = None
        self._draft = ""

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        if self._index is None:
            if step > 0:
                return
            self._draft = self.value
            index = len(self.history) - 1
        else:
            index = max(0, self._index + step)
        if index >= len(self.history):
            self._index = None
            self._show(self._draft)
        else:
            self._index = index
            self._show(self.history[index])

    def _show(self, text: str) -> None:
        self.value = text
        self.cursor_position = len(text)


class TextSink(Protocol):
    """Where streamed text goes: `Markdown.get_stream()`."""

    async def write(self, markdown_fragment: str) -> None: ...

    async def stop(self) -> None: ...


class Outbox:
    """Text on its way to a sink, written in batches by the pane's flush timer.

    Writing each token yields to the event loop, and the Markdown stream then starts an
    append for that one token: for a long paragraph (each append re-parses it) that costs
    O(n^2). Batches every FLUSH_INTERVAL_S keep appends few and the delay invisible.
    """

    def __init__(self, sink: TextSink) -> None:
        self.sink = sink
        self.parts: list[str] = []

    async def flush(self) -> None:
        if self.parts:
            text = "".join(self.parts)
            self.parts.clear()
            # The answer is Markdown, but a model's control characters are shown, not obeyed.
            await self.sink.write(visible_lines(text))

    async def close(self) -> None:
        await self.flush()
        await self.sink.stop()
