"""The chat pane: talk to an OpenAI-compatible endpoint to check that it works, and how fast.

Parts, top to bottom: the endpoint bar (URL, key, model, probed state), the parameters, the
messages (one Markdown widget each), the status line and the prompt. An answer streams in an
async worker (reading and pacing: `answer.py`) whose `async with` holds the HTTP client and
the event stream: stopping the answer (escape) cancels the worker, which closes the
connection, so the server stops generating. Whatever ended the answer (done, stopped, an
error, a dropped connection), the partial text stays and the status line says what happened.

Use: `ChatPane(EndpointConfig(base_url, api_key, model))`; `point_at(...)` repoints it.
It posts `EndpointChanged` after each probe or model choice and `AnswerFinished` per answer.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.await_complete import AwaitComplete
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widget import AwaitMount
from textual.widgets import Input, Markdown, Static
from textual.worker import Worker, WorkerState

from vllm_console.core.endpoint.client import Done, EndpointStatus, probe
from vllm_console.core.text import visible
from vllm_console.widgets.chat.answer import FLUSH_INTERVAL_S, AnswerReader, FlushPacer, annotate
from vllm_console.widgets.chat.endpoint_bar import EndpointBar, Prober
from vllm_console.widgets.chat.keys import CHAT_KEYS
from vllm_console.widgets.chat.parts import ChatLog, MessageView, Outbox, PromptInput, TextSink
from vllm_console.widgets.chat.settings_form import ChatSettings
from vllm_console.widgets.chat.state import (
    ASSISTANT,
    IDLE_STATUS,
    USER,
    ChatParams,
    EndpointConfig,
    LiveAnswer,
    Turn,
    export_markdown,
    export_name,
    live_status,
    stopped_stats,
    turn_status,
)
from vllm_console.widgets.worker_errors import ReportsWorkerErrors

__all__ = ["ChatPane", "ChatParams", "EndpointConfig", "TextSink", "Turn"]

STATUS_INTERVAL_S = 0.25  # the status line's refresh while an answer streams


class ChatPane(ReportsWorkerErrors, Vertical):
    """Endpoint bar, parameters, messages, status line and prompt."""

    DEFAULT_CSS = Path(__file__).with_name("pane.tcss").read_text(encoding="utf-8")

    BINDINGS = list(CHAT_KEYS)

    class EndpointChanged(Message):
        """The endpoint was probed, or another model was chosen."""

        def __init__(self, config: EndpointConfig, status: EndpointStatus | None) -> None:
            super().__init__()
            self.config = config
            self.status = status

    class AnswerFinished(Message):
        """An answer ended (done, stopped, failed); `turn.stats` says how."""

        def __init__(self, turn: Turn) -> None:
            super().__init__()
            self.turn = turn

    def __init__(
        self,
        endpoint: EndpointConfig,
        *,
        params: ChatParams | None = None,
        export_dir: Path | None = None,
        prober: Prober = probe,
        id: str | None = "chat-pane",
    ) -> None:
        super().__init__(id=id)
        self._endpoint = endpoint
        self._params = params
        self._export_dir = export_dir
        self._prober = prober
        self._turns: list[Turn] = []
        self._live: LiveAnswer | None = None
        self._worker: Worker[None] | None = None
        self._outboxes: list[Outbox] = []
        self._pacer = FlushPacer()

    def compose(self) -> ComposeResult:
        yield EndpointBar(self._endpoint, prober=self._prober)
        yield ChatSettings(self._params)
        yield ChatLog(id="chat-log")
        yield Static(IDLE_STATUS, id="chat-status")
        yield PromptInput(placeholder="Message · enter sends · ↑↓ history", id="chat-input")

    def on_mount(self) -> None:
        # Both clocks run only while an answer streams: an idle console must not wake 54
        # times a second for nothing (they are resumed by `send`, paused once it is done).
        self._clocks = (
            self.set_interval(STATUS_INTERVAL_S, self._tick, name="chat-status-clock", pause=True),
            self.set_interval(FLUSH_INTERVAL_S, self._flush, name="chat-flush", pause=True),
        )

    def _run_clocks(self, running: bool) -> None:
        for clock in getattr(self, "_clocks", ()):
            clock.resume() if running else clock.pause()

    # -- what the App reads and calls -----------------------------------------------------

    @property
    def config(self) -> EndpointConfig:
        return self.query_one(EndpointBar).config

    @property
    def endpoint_status(self) -> EndpointStatus | None:
        return self.query_one(EndpointBar).status

    @property
    def params(self) -> ChatParams:
        return self.query_one(ChatSettings).params

    @property
    def turns(self) -> tuple[Turn, ...]:
        return tuple(self._turns)

    @property
    def busy(self) -> bool:
        """An answer is streaming."""
        worker = self._worker
        return worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    def point_at(
        self,
        base_url: str,
        api_key: str | None = None,
        model: str | None = None,
        *,
        source: str = "settings",
    ) -> None:
        """Chat with another endpoint (the launched server on Ready, say); probes it."""
        self.query_one(EndpointBar).point_at(EndpointConfig(base_url, api_key, model, source))

    def focus_prompt(self) -> None:
        self.query_one(PromptInput).focus()

    def send(self, text: str) -> bool:
        """Ask `text`; False (and the status line says why) when it cannot be sent now."""
        text = text.strip()
        if not text:
            return False
        settings = self.query_one(ChatSettings)
        problem = None
        if self.busy:
            problem = "an answer is still streaming: escape stops it"
        elif settings.errors:
            problem = f"fix the settings first (ctrl+t): {'; '.join(settings.errors)}"
        elif not self.config.model:
            problem = "no model to ask: the endpoint lists none (ctrl+r probes again)"
        if problem:
            self._set_status(Content.styled(f"✖ {problem}", "$text-warning"))
            return False
        config = self.config
        self._turns.append(Turn(USER, text))
        answer = MessageView(ASSISTANT, model=config.model)
        mounted = self.query_one(ChatLog).mount_all([MessageView(USER, text), answer])
        self._live = LiveAnswer(config.model or "")
        self._set_status(live_status(self._live))
        self._run_clocks(True)
        self._worker = self._answer(config, settings.params, tuple(self._turns), answer, mounted)
        self.refresh_bindings()
        return True

    def stop(self) -> None:
        """Stop the answer being streamed; its text so far is kept."""
        if self._worker is not None and self.busy:
            self._worker.cancel()

    async def clear(self) -> None:
        """Forget the conversation (stopping an answer first)."""
        self.stop()
        await self._answered()
        self._turns.clear()
        await self.query_one(ChatLog).remove_children()
        self._set_status(IDLE_STATUS)
        self.refresh_bindings()

    def load(self, turns: Sequence[Turn]) -> AwaitComplete:
        """Show a recorded conversation (replacing this one); its last answer sets the status."""
        self._turns = list(turns)
        log = self.query_one(ChatLog)
        views = [MessageView(t.role, t.content, model=t.model) for t in turns]

        async def replace_all() -> None:
            await log.remove_children()
            await log.mount_all(views)
            for turn, view in zip(turns, views, strict=True):
                annotate(view, turn)
            last = next((t for t in reversed(turns) if t.role == ASSISTANT), None)
            self._set_status(turn_status(last) if last else IDLE_STATUS)
            self.refresh_bindings()

        return AwaitComplete(replace_all())

    def export(self, path: Path | None = None) -> Path:
        """Write the conversation as Markdown (in a thread); returns where."""
        folder = self._export_dir if self._export_dir is not None else Path.cwd()
        path = path if path is not None else folder / export_name()
        text = export_markdown(self._turns, self.config, self.params)
        self._write_export(path, text)
        return path

    def copy_last_answer(self) -> bool:
        answer = self._last_answer()
        if answer is None:
            return False
        self.app.copy_to_clipboard(answer)
        self.notify(f"Copied the last answer ({len(answer):,} characters)", timeout=3)
        return True

    # -- actions --------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.busy  # False: escape goes on to whoever else wants it
        if action == "copy_answer":
            return True if self._last_answer() is not None else None
        if action in ("clear", "export"):
            return True if self._turns else None
        return True

    def action_stop(self) -> None:
        self.stop()

    async def action_clear(self) -> None:
        await self.clear()

    def action_export(self) -> None:
        self.export()

    def action_copy_answer(self) -> None:
        self.copy_last_answer()

    def action_settings(self) -> None:
        settings = self.query_one(ChatSettings)
        if settings.collapsed:
            settings.focus_first()
        else:
            settings.collapsed = True
            self.query_one(PromptInput).focus()

    def action_reprobe(self) -> None:
        self.query_one(EndpointBar).reprobe()

    # -- events ---------------------------------------------------------------------------

    @on(Input.Submitted, "#chat-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        prompt = self.query_one(PromptInput)
        if self.send(event.value):
            prompt.remember(event.value.strip())
            prompt.value = ""

    @on(EndpointBar.Changed)
    def _endpoint_changed(self, event: EndpointBar.Changed) -> None:
        event.stop()
        self.post_message(self.EndpointChanged(event.config, event.status))

    @on(ChatSettings.Changed)
    def _settings_changed(self, event: ChatSettings.Changed) -> None:
        event.stop()

    # -- the answer -----------------------------------------------------------------------

    def _sink(self, markdown: Markdown) -> TextSink:
        return Markdown.get_stream(markdown)

    @work(exclusive=True, group="chat-answer", exit_on_error=False)
    async def _answer(
        self,
        config: EndpointConfig,
        params: ChatParams,
        turns: tuple[Turn, ...],
        view: MessageView,
        mounted: AwaitMount,
    ) -> None:
        await mounted
        live = self._live or LiveAnswer(config.model or "")
        model = config.model or ""
        reader = AnswerReader(Outbox(self._sink(view.markdown)), partial(self._thoughts, view))
        self._outboxes = [reader.answer]
        try:
            await reader.read(config, params, turns, live)
        finally:
            turn = self._record(view, model, live, reader.done)
            self._outboxes = []
            self._run_clocks(False)
            await reader.close()
            async with view.markdown.lock:  # the stream's last append has landed
                pass
            self.post_message(self.AnswerFinished(turn))

    async def _thoughts(self, view: MessageView) -> Outbox:
        """The answer's thinking, in its own box above it, once the first of it arrives."""
        box = Outbox(self._sink(await view.reasoning()))
        self._outboxes.append(box)
        return box

    async def _flush(self) -> None:
        """Hand the streamed text on when the pacer says so (see `answer.FlushPacer`)."""
        if self._pacer.due(time.monotonic()):
            for box in self._outboxes:
                await box.flush()

    def _record(self, view: MessageView, model: str, live: LiveAnswer, done: Done | None) -> Turn:
        """The answer joins the conversation, and the status line says how it went."""
        if done is not None:
            turn = Turn(ASSISTANT, done.text, model, done.stats)
        else:
            text = "".join(live.text)
            turn = Turn(ASSISTANT, text, model, stopped_stats(model, live), stopped=True)
        self._turns.append(turn)
        self._live = None
        annotate(view, turn)
        self._set_status(turn_status(turn))
        self.call_later(self.refresh_bindings)
        return turn

    async def _answered(self) -> None:
        worker = self._worker
        if worker is not None and self.busy:
            with contextlib.suppress(Exception):
                await worker.wait()

    # -- helpers --------------------------------------------------------------------------

    def _set_status(self, content: Content) -> None:
        # One line, always: no layout pass (which would re-wrap a long answer) per update.
        self.query_one("#chat-status", Static).update(content, layout=False)

    def _tick(self) -> None:
        if self._live is not None:
            self._set_status(live_status(self._live))

    def _last_answer(self) -> str | None:
        return next((t.content for t in reversed(self._turns) if t.role == ASSISTANT), None)

    @work(thread=True, group="chat-export", exit_on_error=False)
    def _write_export(self, path: Path, text: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            failed = visible(f"Export failed: {exc}")
            self.app.call_from_thread(self.notify, failed, severity="error", markup=False)
            return
        saved = visible(f"Conversation saved to {path}")
        self.app.call_from_thread(self.notify, saved, timeout=4, markup=False)
