"""The chat pane's keys: a line for the footer and the whole story (the tooltip) for the help
screen. The prompt's own keys are on `parts.PromptInput`."""

from __future__ import annotations

from textual.binding import Binding

CHAT_KEYS: tuple[Binding, ...] = (
    Binding(
        "escape",
        "stop",
        "Stop",
        id="chat.stop",
        tooltip="Stop the answer being streamed; its text so far is kept",
    ),
    Binding(
        "ctrl+l",
        "clear",
        "Clear",
        id="chat.clear",
        tooltip="Forget the conversation and start a new one",
    ),
    Binding(
        "ctrl+s",
        "export",
        "Export .md",
        id="chat.export",
        tooltip="Save the conversation as a Markdown file in the current folder",
    ),
    Binding(
        "ctrl+y",
        "copy_answer",
        "Copy answer",
        id="chat.copy",
        tooltip="Copy the last answer to the clipboard",
    ),
    Binding(
        "ctrl+t",
        "settings",
        "Settings",
        id="chat.settings",
        tooltip="Show or hide the parameters: temperature, top_p, max tokens, system prompt",
    ),
    Binding(
        "ctrl+r",
        "reprobe",
        "Probe",
        id="chat.probe",
        tooltip="Probe the endpoint again: is it up, which models does it serve",
    ),
)
