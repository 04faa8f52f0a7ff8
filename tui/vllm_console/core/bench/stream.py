"""One streamed `/v1/completions` request of a benchmark, timed as vLLM's benchmark times it.

`CompletionParser` is the chat stream's SSE parser (`core.endpoint.sse.ChatParser`: the same
framing, `[DONE]`, mid-stream errors, malformed lines skipped and counted) reading a
completion's chunks instead: every chunk that carries a choice is a token's arrival, its text
empty or not (a special token), as in vLLM's `async_request_openai_completions`.
A read's events share one timestamp, taken when the read came (`feed_at`): they arrived
together. `wire_once` sends one request on the load runner's own connection (`wire.Wire`),
`request_once` through httpx (for an endpoint behind a proxy); both always return a
`RequestResult`, and only cancellation goes through, closing the connection (the server stops
generating).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from vllm_console.core.bench.stats import RequestResult
from vllm_console.core.bench.wire import Wire, WireError
from vllm_console.core.endpoint.capped import describe_error, error_body
from vllm_console.core.endpoint.sse import MAX_PLAUSIBLE, ChatParser, Delta, Usage

READ_TIMEOUT_S = 300.0
MAX_ERROR_CHARS = 300


class CompletionParser(ChatParser):
    """The SSE parser over completion chunks: arrival times of chunks with a choice."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []
        self.now = self.t0

    def feed_at(self, chunk: bytes, now: float) -> None:
        """A read that came at `now`: its events are timed by it."""
        self.now = now
        self.feed(chunk)

    def _on_chunk(self, obj: dict[str, Any], out: list[Delta | Usage]) -> None:
        choices = obj.get("choices")
        if choices:
            choice = choices[0]
            if not isinstance(choice, dict):
                raise TypeError("a choice is an object")
            self.arrivals.append(self.now)
            text = choice.get("text")
            if isinstance(text, str) and text:
                self.text.append(text)
            reason = choice.get("finish_reason")
            if reason:
                self.finish_reason = str(reason)
        usage = obj.get("usage")
        if usage and isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            self.usage = Usage(_count(prompt), _count(completion), None)

    def result(self, error: str | None) -> RequestResult:
        """This request as vLLM's benchmark counts it."""
        if error is None and self.error is not None:
            error = self.error
        if error is None and not self.arrivals:
            error = "no chunk with a token came"
        if error is None and not (self.done or self.finish_reason):
            error = "the stream ended before the answer finished"
        if error is not None:
            return RequestResult(ok=False, error=error)
        first, last = self.arrivals[0], self.arrivals[-1]
        gaps = tuple(b - a for a, b in zip(self.arrivals, self.arrivals[1:], strict=False))
        usage = self.usage
        return RequestResult(
            ok=True,
            ttft_s=first - self.t0,
            latency_s=last - self.t0,
            itl_s=gaps,
            output_tokens=(usage.completion_tokens or 0) if usage else 0,
            prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
        )


def _count(value: object) -> int | None:
    return value if type(value) is int and 0 <= value <= MAX_PLAUSIBLE else None


def http_error(status: int, body: bytes) -> str:
    """`HTTP 404: The model ... does not exist.`: the server's own words, when it gave any."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    err = data.get("error", data) if isinstance(data, dict) else None
    said = err.get("message") or err.get("detail") if isinstance(err, dict) else err
    text = str(said)[:MAX_ERROR_CHARS] if said else "no reason given"
    return f"HTTP {status}: {text}"


def completion_body(model: str, prompt: str | list[int], output_len: int) -> dict[str, Any]:
    """The body vLLM's benchmark sends, key for key: exact output length (`ignore_eos`), usage
    at the end."""
    return {
        "model": model,
        "prompt": prompt,
        "repetition_penalty": 1.0,
        "max_tokens": output_len,
        "logprobs": None,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def request_once(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    *,
    read_timeout: float = READ_TIMEOUT_S,
) -> RequestResult:
    """Send one streamed completion and time it; failures are results, not exceptions."""
    parser = CompletionParser()
    parser.t0 = time.perf_counter()
    error: str | None = None
    timeout = httpx.Timeout(30.0, connect=5.0, read=read_timeout)
    try:
        async with client.stream("POST", url, json=body, headers=headers, timeout=timeout) as r:
            if r.status_code != 200:
                error = http_error(r.status_code, await error_body(r))
            else:
                async for chunk in r.aiter_bytes():
                    parser.feed_at(chunk, time.perf_counter())
                    if parser.done:
                        break
                else:
                    parser.end()
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        error = describe_error(exc, read_timeout)
    return parser.result(error)


async def wire_once(wire: Wire, body: dict[str, Any], headers: dict[str, str]) -> RequestResult:
    """`request_once` on the load runner's own connection."""
    parser = CompletionParser()
    parser.t0 = time.perf_counter()
    try:
        status, answer = await wire.post(json.dumps(body).encode(), headers, parser.feed_at)
    except WireError as exc:
        return parser.result(str(exc))
    if status != 200:
        return parser.result(http_error(status, answer))
    if not parser.done:
        parser.end()
    return parser.result(None)
