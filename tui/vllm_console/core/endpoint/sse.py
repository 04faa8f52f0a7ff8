"""Server-sent events of an OpenAI-compatible chat stream: the parser and the events it makes.

`ChatParser` is pure: fed the bytes of a response as they come, it returns `Delta` and `Usage`
events and keeps the tallies that become `ChatStats`. It follows the SSE rules (`data:` lines
up to a blank line make one event; `:` comments; CR, LF or CRLF line ends) and OpenAI's
conventions (`[DONE]`; `{"error": ...}` mid-stream; a usage chunk whose `choices` is empty);
anything else is skipped and counted, never raised (JSON nested past Python's recursion
limit included); a token count no server could send (negative, or past MAX_PLAUSIBLE) is
left out, as if not sent. The common event (one `data: {...}` line)
takes one split, one slice and one JSON decode: this is the hot loop of a streamed answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_LINE_BYTES = 16 * 1024 * 1024
# No count a real server reports comes near this (a server at 100k tokens/s for a year counts
# ~3e12): a larger one, or a negative one, is not a count, and would print as a wall of digits.
MAX_PLAUSIBLE = 10**15
# No single stream decodes faster than this. Above it the pieces were handed over together (a
# buffering proxy, a server that fell behind, a reader too busy to read them as they came): the
# time between them says nothing about the decode, so no rate is given for them.
HELD_BACK_TOKENS_PER_S = 5000.0
HELD_BACK_MIN_TOKENS = 16


def decode_rate(tokens: int, first: float | None, last: float | None) -> tuple[float | None, bool]:
    """(tokens per second after the first one, held back): no rate when they came at once."""
    if first is None or last is None or tokens < 2:
        return None, False
    span = last - first
    rate = (tokens - 1) / span if span > 0 else None
    held = tokens >= HELD_BACK_MIN_TOKENS and (rate is None or rate > HELD_BACK_TOKENS_PER_S)
    return (None if held else rate), held


@dataclass(frozen=True, slots=True)
class Delta:
    text: str
    reasoning: bool = False  # `reasoning_content` of a reasoning model, not the answer


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None


@dataclass(frozen=True)
class ChatStats:
    """How one answer went. `tokens_per_s` is the decode rate after the first token; None
    with `held_back` when the answer arrived all at once (see `decode_rate`)."""

    model: str
    ttft_s: float | None
    total_s: float
    tokens: int  # completion tokens from usage when sent, else content chunks
    tokens_per_s: float | None
    finish_reason: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    malformed_lines: int = 0
    error: str | None = None
    dropped: bool = False  # the stream ended early; the partial answer is kept
    http_status: int | None = None
    held_back: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.dropped

    def summary(self) -> str:
        parts = [f"model {self.model}"]
        if self.ttft_s is not None:
            parts.append(f"ttft {self.ttft_s:.3f} s")
        parts.append(f"{self.tokens} tokens")
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:.1f} tokens/s")
        elif self.held_back:
            parts.append("arrived all at once (no decode rate)")
        parts.append(f"finish {self.finish_reason or '-'}")
        if self.malformed_lines:
            parts.append(f"{self.malformed_lines} malformed lines skipped")
        return " · ".join(parts)

    def to_json(self) -> dict[str, Any]:
        usage = None
        if self.prompt_tokens is not None or self.completion_tokens is not None:
            usage = {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
            }
        return {
            "model": self.model,
            "ttft_s": self.ttft_s,
            "total_s": self.total_s,
            "tokens": self.tokens,
            "tokens_per_s": self.tokens_per_s,
            "held_back": self.held_back,
            "finish_reason": self.finish_reason,
            "usage": usage,
            "malformed_lines": self.malformed_lines,
            "error": self.error,
            "dropped": self.dropped,
        }


@dataclass(frozen=True, slots=True)
class Done:
    stats: ChatStats
    text: str
    reasoning: str = ""


ChatEvent = Delta | Usage | Done


class ChatParser:
    """Turns the bytes of an SSE chat stream into events and keeps the tallies.

    Follows the SSE rules (`data:` lines up to a blank line make one event; `:` comments;
    CR, LF or CRLF) and OpenAI's conventions (`[DONE]`; `{"error": ...}` mid-stream; a usage
    chunk whose `choices` is empty). Anything else it cannot use is skipped and counted.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.t0 = clock()
        self.malformed = 0
        self.done = False
        self.chunks = 0
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.error: str | None = None
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self._buf = b""
        self._pieces: list[bytes] = []  # of a line still without its end, not joined yet
        self._pieces_size = 0
        self._data: list[bytes] = []
        self._is_error_event = False

    def feed(self, chunk: bytes) -> list[Delta | Usage]:
        if b"\n" not in chunk and b"\r" not in chunk and self._buf[-1:] != b"\r":
            # No line ends here: keep the piece. Joining each one to the line so far would copy
            # a long line once per piece: quadratic for a line that comes a few bytes at a time.
            self._pieces.append(chunk)
            self._pieces_size += len(chunk)
            if len(self._buf) + self._pieces_size > MAX_LINE_BYTES:
                self.malformed += 1
                self._buf, self._pieces, self._pieces_size = b"", [], 0
            return []
        out: list[Delta | Usage] = []
        if self._pieces:
            self._buf += b"".join(self._pieces)
            self._pieces, self._pieces_size = [], 0
        if self._buf:
            chunk = self._buf + chunk
        tail = b""
        if b"\r" in chunk:
            if chunk[-1:] == b"\r":  # maybe half of a CRLF: wait for the next byte
                chunk, tail = chunk[:-1], b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        self._buf = lines.pop() + tail
        if len(self._buf) > MAX_LINE_BYTES:
            self.malformed += 1
            self._buf = b""
        for line in lines:
            if line[:6] == b"data: ":
                self._data.append(line[6:])
            elif not line:
                if self._data:
                    self._dispatch(out)
            elif line[:1] != b":":
                self._field(line)
        return out

    def end(self) -> list[Delta | Usage]:
        """The stream ended: an event still waiting for its blank line is dispatched."""
        out = self.feed(b"\n\n") if self._buf or self._pieces or self._data else []
        return out

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and name == b"data":
            self._data.append(value[1:] if value[:1] == b" " else value)
        elif colon and name == b"event":
            self._is_error_event = value.strip() == b"error"
        elif not colon or name not in (b"id", b"retry"):
            self.malformed += 1

    def _dispatch(self, out: list[Delta | Usage]) -> None:
        data = self._data
        self._data = []
        is_error, self._is_error_event = self._is_error_event, False
        if self.done:
            return
        payload = data[0] if len(data) == 1 else b"\n".join(data)
        if payload == b"[DONE]":
            self.done = True
            return
        try:
            obj = _loads(payload)
        except (ValueError, RecursionError):  # RecursionError: `[[[[...` a million deep
            if len(data) == 1:
                self.malformed += 1
                return
            # several `data:` lines that are not one JSON text: a server that forgot the
            # blank lines between events; read each line on its own
            for line in data:
                self._data = [line]
                self._dispatch(out)
            return
        if type(obj) is not dict:
            self.malformed += 1
        elif is_error or "error" in obj or obj.get("object") == "error":
            self._on_error(obj.get("error", obj))
        else:
            try:
                self._on_chunk(obj, out)
            except (AttributeError, TypeError, KeyError, IndexError):
                self.malformed += 1

    def _on_chunk(self, obj: dict[str, Any], out: list[Delta | Usage]) -> None:
        usage = obj.get("usage")
        choices = obj.get("choices")
        if choices:
            choice = choices[0]
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if content and type(content) is str:
                    self.t_last = now = self.clock()
                    if self.t_first is None:
                        self.t_first = now
                    self.chunks += 1
                    self.text.append(content)
                    out.append(Delta(content))
                thought = delta.get("reasoning_content") or delta.get("reasoning")
                if thought and type(thought) is str:
                    self._tick()
                    self.reasoning.append(thought)
                    out.append(Delta(thought, reasoning=True))
            reason = choice.get("finish_reason")
            if reason:
                self.finish_reason = str(reason)
        if usage:
            self.usage = Usage(
                _int(usage.get("prompt_tokens")),
                _int(usage.get("completion_tokens")),
                _int(usage.get("total_tokens")),
            )
            if not choices:
                out.append(self.usage)

    def _tick(self) -> None:
        now = self.clock()
        if self.t_first is None:
            self.t_first = now
        self.t_last = now
        self.chunks += 1

    def _on_error(self, err: Any) -> None:
        if isinstance(err, dict):
            message = str(err.get("message") or err.get("detail") or err)
            kind = err.get("type") or err.get("code")
            self.error = f"server error: {message}" + (f" ({kind})" if kind else "")
        else:
            self.error = f"server error: {err}"

    def stats(
        self,
        model: str,
        *,
        error: str | None = None,
        dropped: bool = False,
        status: int | None = None,
    ) -> ChatStats:
        usage = self.usage
        completion = usage.completion_tokens if usage else None
        tokens = completion if completion is not None else self.chunks
        rate, held_back = decode_rate(tokens, self.t_first, self.t_last)
        if not (dropped or error or self.error or self.done or self.finish_reason):
            dropped, error = True, "the stream ended before the answer finished"
        return ChatStats(
            model=model,
            ttft_s=None if self.t_first is None else self.t_first - self.t0,
            total_s=self.clock() - self.t0,
            tokens=tokens,
            tokens_per_s=rate,
            finish_reason=self.finish_reason,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=completion,
            malformed_lines=self.malformed,
            error=error or self.error,
            dropped=dropped,
            http_status=status,
            held_back=held_back,
        )


_raw_decode = json.JSONDecoder().raw_decode


def _loads(payload: bytes) -> Any:
    """json.loads, twice as fast for the usual payload (one object, no padding)."""
    text = payload.decode()
    try:
        obj, end = _raw_decode(text)
    except ValueError:
        return json.loads(text)  # leading blanks; or raise the error json.loads would
    if end != len(text) and not text[end:].isspace():
        raise ValueError(f"extra data after the JSON text at {end}")
    return obj


def _int(value: Any) -> int | None:
    """A count, if `value` is one: 4,000 digits or -5 is not (and would be shown as it is)."""
    return value if type(value) is int and 0 <= value <= MAX_PLAUSIBLE else None
