"""The chat's endpoint bar: URL, API key and model, the probed state, and the probe's warnings.

Typed values apply at once (a short pause after the last key, or enter) and start a new probe
in an exclusive worker, so a probe of a half-typed URL is cancelled by the next. The model
selector lists what `/v1/models` serves; a configured model that is not served stays selected,
marked, so the warning and the server's answer say why, rather than the console switching
models behind the user's back. An unreachable endpoint is a calm state, with a retry key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Select, Static

from vllm_console.core.endpoint.client import EndpointStatus, probe
from vllm_console.widgets.chat.state import (
    EndpointConfig,
    endpoint_notes,
    endpoint_state,
    model_options,
)
from vllm_console.widgets.worker_errors import ReportsWorkerErrors

Prober = Callable[[str, str | None, str | None], Awaitable[EndpointStatus]]
TYPING_PAUSE_S = 0.6  # a probe starts this long after the last key in the URL or key field


class EndpointBar(ReportsWorkerErrors, Vertical):
    """Edits and probes the endpoint; reports each probe and model choice as `Changed`."""

    class Changed(Message):
        """The endpoint was probed (`status`), or its model was chosen."""

        def __init__(self, config: EndpointConfig, status: EndpointStatus | None) -> None:
            super().__init__()
            self.config = config
            self.status = status

    def __init__(self, config: EndpointConfig, *, prober: Prober = probe) -> None:
        super().__init__(id="chat-endpoint")
        self.config = config
        self.status: EndpointStatus | None = None
        self.probing = False
        self._prober = prober
        self._pause: Timer | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="chat-endpoint-row"):
            yield Input(
                self.config.base_url,
                placeholder="http://host:8000/v1",
                id="chat-url",
                compact=True,
            )
            yield Input(
                self.config.api_key or "",
                placeholder="API key",
                password=True,
                id="chat-key",
                compact=True,
            )
            yield Select[str](
                model_options(None, self.config.model),
                prompt="model",
                value=self.config.model or Select.NULL,
                id="chat-model",
                compact=True,
            )
            yield Static("", id="chat-endpoint-state")
        yield Static("", id="chat-endpoint-notes")

    def on_mount(self) -> None:
        self.reprobe()

    # -- called by the pane ---------------------------------------------------------------

    def point_at(self, config: EndpointConfig) -> None:
        """Show `config` in the fields and probe it."""
        self.config = config
        with self.prevent(Input.Changed):
            self.query_one("#chat-url", Input).value = config.base_url
            self.query_one("#chat-key", Input).value = config.api_key or ""
        self.reprobe()

    def reprobe(self) -> None:
        if self._pause is not None:
            self._pause.stop()
            self._pause = None
        self.probing = True
        self._show()
        self._probe(self.config)

    # -- events ---------------------------------------------------------------------------

    @on(Input.Changed, "#chat-url, #chat-key")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        url = self.query_one("#chat-url", Input).value.strip()
        key = self.query_one("#chat-key", Input).value.strip() or None
        if (url, key) == (self.config.base_url, self.config.api_key):
            return  # the fields' own Changed on mount, or a point_at
        self.config = replace(self.config, base_url=url, api_key=key, source="typed")
        if self._pause is not None:
            self._pause.stop()
        self._pause = self.set_timer(TYPING_PAUSE_S, self.reprobe, name="chat-typing-pause")

    @on(Input.Submitted, "#chat-url, #chat-key")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.reprobe()

    @on(Select.Changed, "#chat-model")
    def _chosen(self, event: Select.Changed) -> None:
        event.stop()
        model = event.value if isinstance(event.value, str) else None
        if model != self.config.model:
            self.config = replace(self.config, model=model)
            self.post_message(self.Changed(self.config, self.status))

    # -- the probe ------------------------------------------------------------------------

    @work(exclusive=True, group="chat-probe", exit_on_error=False)
    async def _probe(self, config: EndpointConfig) -> None:
        status = await self._prober(config.base_url, config.api_key, config.model)
        if config.model is None and status.model_ids:
            config = replace(config, model=status.model_ids[0])
        self.config, self.status, self.probing = config, status, False
        self._show()
        self.post_message(self.Changed(config, status))

    def _show(self) -> None:
        state = endpoint_state(self.status, self.probing)
        if self.config.source != "settings":
            state = Content.assemble((f"{self.config.source} · ", "$text-muted"), state)
        self.query_one("#chat-endpoint-state", Static).update(state)
        notes = endpoint_notes(self.status, self.probing)
        widget = self.query_one("#chat-endpoint-notes", Static)
        widget.update(notes)
        widget.display = bool(notes.plain)
        if self.probing:
            return
        select: Select[str] = self.query_one("#chat-model", Select)
        with self.prevent(Select.Changed):
            select.set_options(model_options(self.status, self.config.model))
            select.value = self.config.model or Select.NULL
