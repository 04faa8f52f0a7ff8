"""One answer as it streams: reading the events, pacing the text to the screen, the note after.

`AnswerReader.read` runs inside the chat pane's worker: `async with` the HTTP client and the
event stream, so cancelling the worker (escape) closes the connection and the server stops
generating. Text goes to outboxes (`parts.Outbox`), which the pane flushes to the Markdown
widgets when `FlushPacer` says so; whatever the reader got (the final `Done`, the thinking
box) stays readable after a stop or an error. `annotate` writes the line under an answer
that did not end normally.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from textual.content import Content

from vllm_console.core.endpoint.client import Delta, Done, make_client, stream_chat
from vllm_console.core.text import visible
from vllm_console.widgets.chat.parts import MessageView, Outbox
from vllm_console.widgets.chat.state import (
    ASSISTANT,
    ChatParams,
    EndpointConfig,
    LiveAnswer,
    Turn,
    request_messages,
)

FLUSH_INTERVAL_S = 0.02  # streamed text reaches the Markdown widget in batches this often,
MAX_FLUSH_GAP_S = 0.5  # or, while rendering keeps the event loop busy, up to this seldom


class FlushPacer:
    """When to hand the streamed text on, less often while the screen struggles to keep up.

    Each append re-wraps the answer's last paragraph on the next refresh; for one long
    paragraph that is ~0.1 s at 30 KB, and appends every 20 ms would keep the event loop
    busy rendering, slowing the stream's own reading. Waiting twice the timer's lateness
    between appends keeps the loop at most about half busy.
    """

    def __init__(self) -> None:
        self._ticked_at = self._flushed_at = 0.0
        self._lag = 0.0  # how late the flush timer runs, smoothed: the event loop's load

    def due(self, now: float) -> bool:
        """Called by the flush timer (every FLUSH_INTERVAL_S) at `now`: flush this time?"""
        late = max(0.0, now - self._ticked_at - FLUSH_INTERVAL_S) if self._ticked_at else 0.0
        self._ticked_at = now
        self._lag = 0.5 * self._lag + 0.5 * min(late, MAX_FLUSH_GAP_S)
        if now - self._flushed_at < min(MAX_FLUSH_GAP_S, 2 * self._lag):
            return False
        self._flushed_at = now
        return True


class AnswerReader:
    """Reads one answer's events into `answer` (and a thinking box opened on demand)."""

    def __init__(self, answer: Outbox, open_thoughts: Callable[[], Awaitable[Outbox]]) -> None:
        self.answer = answer
        self.thoughts: Outbox | None = None
        self.done: Done | None = None  # the stream's end, when it got that far
        self._open_thoughts = open_thoughts

    async def read(
        self, config: EndpointConfig, params: ChatParams, turns: tuple[Turn, ...], live: LiveAnswer
    ) -> None:
        model = config.model or ""
        async with (
            make_client(config.base_url) as client,
            contextlib.aclosing(
                stream_chat(
                    client,
                    config.base_url,
                    config.api_key,
                    model,
                    request_messages(params, turns),
                    temperature=params.temperature,
                    top_p=params.top_p,
                    max_tokens=params.max_tokens,
                )
            ) as events,
        ):
            async for event in events:
                if type(event) is Delta:
                    live.tick()
                    if not event.reasoning:
                        self.answer.parts.append(event.text)
                        live.text.append(event.text)
                        continue
                    if self.thoughts is None:
                        self.thoughts = await self._open_thoughts()
                    self.thoughts.parts.append(event.text)
                elif type(event) is Done:
                    self.done = event

    async def close(self) -> None:
        """Hand the last text on and end the Markdown streams."""
        for box in (self.answer, self.thoughts):
            if box is not None:
                await box.close()


def annotate(view: MessageView, turn: Turn) -> None:
    """The note under an answer that was stopped, failed, or cut at max tokens."""
    stats = turn.stats
    if turn.role != ASSISTANT or stats is None:
        return
    if turn.stopped:
        view.set_note(Content.styled("■ stopped", "$text-warning"))
    elif stats.error or stats.dropped:
        error = visible(f"✖ {stats.error or 'ended early'}")  # the server's words
        view.set_note(Content.styled(error, "$text-error"))
    elif stats.finish_reason == "length":
        hint = "⚠ cut at max tokens: raise it in the settings (ctrl+t)"
        view.set_note(Content.styled(hint, "$text-warning"))
