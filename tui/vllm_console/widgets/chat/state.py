"""The chat pane's state as data, and the text made from it (endpoint state, status line, export).

Pure: no widgets, no I/O, so the wording can be tested on its own and the pane, its export and
the app's header say the same thing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rich.text import Text
from textual.content import Content

from vllm_console.config import Settings
from vllm_console.core.endpoint.client import ChatStats, EndpointStatus
from vllm_console.core.endpoint.sse import decode_rate
from vllm_console.core.text import visible

USER, ASSISTANT = "user", "assistant"
UNKNOWN = "\N{EN DASH}"  # a figure the server did not send


@dataclass(frozen=True)
class EndpointConfig:
    """Where the chat goes. `source` says who chose it: "settings", "local server", "typed"."""

    base_url: str
    api_key: str | None = None
    model: str | None = None
    source: str = "settings"

    @classmethod
    def from_settings(cls, settings: Settings) -> EndpointConfig:
        return cls(settings.base_url, settings.api_key, settings.model, "settings")


@dataclass(frozen=True)
class ChatParams:
    """Sampling parameters; None leaves the server's default."""

    system_prompt: str = ""
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None

    def summary(self, *, system: bool = True) -> str:
        def shown(value: float | None) -> str:
            return "default" if value is None else f"{value:g}"

        parts = [
            f"temperature {shown(self.temperature)}",
            f"top_p {shown(self.top_p)}",
            f"max tokens {shown(self.max_tokens)}",
        ]
        if system and self.system_prompt:
            prompt = self.system_prompt.replace("\n", " ")
            parts.append(f"system: {prompt[:40]}{'…' if len(prompt) > 40 else ''}")
        return " · ".join(parts)


@dataclass(frozen=True)
class Turn:
    """One message of the conversation; an answer carries how it went."""

    role: str  # USER or ASSISTANT
    content: str
    model: str | None = None
    stats: ChatStats | None = None
    stopped: bool = False  # the user stopped the answer


@dataclass
class LiveAnswer:
    """The answer being streamed, for the status line while it comes."""

    model: str
    started: float = field(default_factory=time.monotonic)
    first_at: float | None = None
    tokens: int = 0
    text: list[str] = field(default_factory=list)  # the answer so far

    def tick(self) -> None:
        if self.first_at is None:
            self.first_at = time.monotonic()
        self.tokens += 1


def request_messages(params: ChatParams, turns: Sequence[Turn]) -> list[dict[str, str]]:
    """What the server is sent: the system prompt, then every turn with some content."""
    messages = [{"role": "system", "content": params.system_prompt}] if params.system_prompt else []
    messages += [{"role": t.role, "content": t.content} for t in turns if t.content]
    return messages


def stopped_stats(model: str, live: LiveAnswer, now: float | None = None) -> ChatStats:
    """What is known of an answer stopped before its end."""
    now = time.monotonic() if now is None else now
    rate, held_back = decode_rate(live.tokens, live.first_at, now)
    ttft = None if live.first_at is None else live.first_at - live.started
    return ChatStats(model, ttft, now - live.started, live.tokens, rate, None, held_back=held_back)


# --- the endpoint bar ---------------------------------------------------------------------


def endpoint_state(status: EndpointStatus | None, probing: bool) -> Content:
    """One short state: probing, vLLM 0.32.0, OpenAI-compatible, unreachable, key rejected."""
    if probing or status is None:
        return Content.styled("◌ probing…", "$text-muted")
    if not status.reachable:
        return Content.assemble(("○ unreachable  ", "$text-muted"), ("ctrl+r retry", "dim"))
    if status.key_rejected:
        return Content.styled("✖ API key rejected", "bold $text-error")
    if status.is_vllm:
        return Content.styled(visible(f"● vLLM {status.version}"), "bold $text-success")
    return Content.styled("● OpenAI-compatible", "bold $text-primary")


def endpoint_notes(status: EndpointStatus | None, probing: bool) -> Content:
    """The probe's problems and warnings, one a line; calm words for an unreachable endpoint."""
    if probing or status is None:
        return Content("")
    if not status.reachable:
        reason = "; ".join(status.problems) or "no answer"
        text = f"No endpoint at {status.base_url} ({reason}). Launch a server, or type a URL."
        return Content.styled(visible(text), "$text-muted")
    # Problems and warnings quote the server (its errors, its model names): shown, not obeyed.
    lines = [Content.styled(visible(f"⚠ {p}"), "$text-warning") for p in status.problems]
    lines += [Content.styled(visible(w), "$text-muted") for w in status.warnings]
    return Content("\n").join(lines)


def model_options(status: EndpointStatus | None, wanted: str | None) -> list[tuple[Text, str]]:
    """(label, id) for the model selector: the served models, and the wanted one if not served.

    Labels are Text, not str, which the selector would read as markup: a server names its
    models, and `[bold]x` is a name like any other.
    """
    served = list(status.model_ids) if status else []
    options = [(model, model) for model in served]
    if wanted and wanted not in served:
        options.insert(0, (f"{wanted} (not served)" if served else wanted, wanted))
    return [(Text(visible(label)), model) for label, model in options]


# --- the status line ----------------------------------------------------------------------


def live_status(live: LiveAnswer, now: float | None = None) -> Content:
    now = time.monotonic() if now is None else now
    if live.first_at is None:
        text = f"waiting for the first token… {now - live.started:.1f} s"
        return Content.assemble(("◌ ", "$text-accent"), (text, "$text-muted"))
    per_s, _ = decode_rate(live.tokens, live.first_at, now)
    rate = "" if per_s is None else f" · {per_s:.0f} tok/s"
    text = f"streaming · {live.tokens} tokens{rate} · {now - live.started:.1f} s  (esc stops)"
    return Content.assemble(("● ", "$text-accent"), text)


def stats_parts(stats: ChatStats) -> list[str]:
    """ttft, tokens/s, tokens in and out, the total time: the plain part of the status line."""
    parts = []
    if stats.ttft_s is not None:
        parts.append(f"ttft {stats.ttft_s:.3f} s")
    if stats.tokens_per_s is not None:
        parts.append(f"{stats.tokens_per_s:.1f} tok/s")
    elif stats.held_back:
        parts.append("arrived all at once")
    parts.append(f"in {UNKNOWN if stats.prompt_tokens is None else stats.prompt_tokens}")
    parts.append(f"out {stats.tokens}")
    parts.append(f"{stats.total_s:.2f} s")
    if stats.malformed_lines:
        parts.append(f"{stats.malformed_lines} malformed lines skipped")
    return parts


def turn_status(turn: Turn) -> Content:
    """The status line after an answer: how it went, and why it ended."""
    stats = turn.stats
    if stats is None:
        return Content.styled("■ stopped by you", "bold $text-warning")
    plain = " · ".join(stats_parts(stats))
    kept = " · partial answer kept" if turn.content else ""
    if turn.stopped:
        head: tuple[str, str] = ("■ stopped by you", "bold $text-warning")
        return Content.assemble(head, f" · {plain}{kept}")
    if stats.error is not None or stats.dropped:
        head = (visible(f"✖ {stats.error or 'the answer ended early'}"), "bold $text-error")
        return Content.assemble(head, f"{kept} · {plain}")
    if stats.finish_reason == "length":
        flag = ("⚠ finish length: cut at max tokens", "bold $text-warning")
        return Content.assemble(("● ", "$text-success"), f"{plain} · ", flag)
    finish = f"finish {stats.finish_reason or UNKNOWN}"
    return Content.assemble(("● ", "$text-success"), f"{plain} · {finish}")


IDLE_STATUS = Content.styled("Type a message, enter sends.", "$text-muted")


# --- export -------------------------------------------------------------------------------


def export_markdown(
    turns: Sequence[Turn],
    endpoint: EndpointConfig,
    params: ChatParams,
    when: datetime | None = None,
) -> str:
    """The conversation as a Markdown document, with where it ran and how each answer went."""
    when = datetime.now() if when is None else when
    model = next((t.model for t in reversed(turns) if t.model), endpoint.model or "unknown model")
    lines = [f"# Chat with {model}", ""]
    lines.append(f"- Endpoint: {endpoint.base_url}")
    lines.append(f"- Exported: {when:%Y-%m-%d %H:%M:%S}")
    lines.append(f"- Parameters: {params.summary(system=False)}")
    if params.system_prompt:
        lines += ["", "## System prompt", "", params.system_prompt]
    for turn in turns:
        title = "You" if turn.role == USER else f"Assistant ({turn.model or model})"
        lines += ["", f"## {title}", "", turn.content or "*(no answer)*"]
        if turn.role == ASSISTANT:
            lines += ["", f"*{turn_status(turn).plain}*"]
    return "\n".join(lines) + "\n"


def export_name(when: datetime | None = None) -> str:
    when = datetime.now() if when is None else when
    return f"chat-{when:%Y%m%d-%H%M%S}.md"


# --- the parameters form ------------------------------------------------------------------

PARAM_LIMITS: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "max_tokens": (1, 10_000_000),
}


def parse_params(
    system_prompt: str, temperature: str, top_p: str, max_tokens: str
) -> tuple[ChatParams, tuple[str, ...]]:
    """The form's text as ChatParams; each field that does not parse is named in the errors
    and left at the server's default."""
    errors: list[str] = []

    def number(name: str, text: str, kind: type[float] | type[int]) -> float | None:
        text = text.strip()
        if not text:
            return None
        low, high = PARAM_LIMITS[name]
        try:
            value = kind(text)
        except ValueError:
            errors.append(f"{name.replace('_', ' ')}: {text!r} is not a {kind.__name__}")
            return None
        if not low <= value <= high:
            errors.append(f"{name.replace('_', ' ')}: {text} is outside {low:g}..{high:g}")
            return None
        return value

    temp = number("temperature", temperature, float)
    top = number("top_p", top_p, float)
    max_out = number("max_tokens", max_tokens, int)
    params = ChatParams(
        system_prompt=system_prompt.strip(),
        temperature=temp,
        top_p=top,
        max_tokens=None if max_out is None else int(max_out),
    )
    return params, tuple(errors)
