"""The chat's parameters: system prompt, temperature, top_p and max tokens, in a collapsible form.

Collapsed, its title line shows every value, so nothing sent hides behind the fold. An empty
field leaves the server's default; a field that does not parse is marked and named in the
errors, and the pane refuses to send until it is fixed.
"""

from __future__ import annotations

from typing import Literal

from textual import on
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Collapsible, Input, Label

from vllm_console.widgets.chat.state import ChatParams, parse_params

FIELDS = ("chat-system", "chat-temperature", "chat-top-p", "chat-max-tokens")


def _text(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


class ChatSettings(Collapsible):
    """`params` holds the last good reading of the form; `errors` names the bad fields."""

    class Changed(Message):
        def __init__(self, params: ChatParams, errors: tuple[str, ...]) -> None:
            super().__init__()
            self.params = params
            self.errors = errors

    def __init__(self, params: ChatParams | None = None) -> None:
        params = params or ChatParams()
        numbers = Horizontal(
            Label("temperature"),
            self._field("chat-temperature", _text(params.temperature), "number"),
            Label("top_p"),
            self._field("chat-top-p", _text(params.top_p), "number"),
            Label("max tokens"),
            self._field("chat-max-tokens", _text(params.max_tokens), "integer"),
            classes="chat-settings-row",
        )
        system = Horizontal(
            Label("system"),
            Input(
                params.system_prompt,
                placeholder="system prompt (none)",
                id="chat-system",
                compact=True,
            ),
            classes="chat-settings-row",
        )
        super().__init__(numbers, system, title=self._heading(params), id="chat-settings")
        self.params = params
        self.errors: tuple[str, ...] = ()

    @staticmethod
    def _field(id: str, value: str, kind: Literal["integer", "number"]) -> Input:
        return Input(value, placeholder="default", type=kind, id=id, compact=True)

    @staticmethod
    def _heading(params: ChatParams, errors: tuple[str, ...] = ()) -> str:
        shown = "⚠ " + "; ".join(errors) if errors else params.summary()
        return f"Settings · {shown}"

    def focus_first(self) -> None:
        self.collapsed = False
        self.query_one("#chat-temperature", Input).focus()

    @on(Input.Changed)
    def _edited(self, event: Input.Changed) -> None:
        event.stop()
        values = [self.query_one(f"#{name}", Input).value for name in FIELDS]
        params, errors = parse_params(*values)
        for name, label in (
            ("chat-temperature", "temperature"),
            ("chat-top-p", "top p"),
            ("chat-max-tokens", "max tokens"),
        ):
            bad = any(error.startswith(label) for error in errors)
            self.query_one(f"#{name}", Input).set_class(bad, "-invalid")
        self.params, self.errors = params, errors
        self.title = self._heading(params, errors)
        self.post_message(self.Changed(params, errors))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()  # enter in a field is not "send"
