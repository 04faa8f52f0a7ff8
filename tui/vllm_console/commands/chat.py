"""`vllm-console chat "PROMPT"`: one streamed answer on stdout, its statistics on stderr.

For scripts and quick checks of an endpoint. It probes the endpoint first, as the chat pane
does: an unreachable one fails within seconds with a one-line reason; a model that is not
served is named with the ones that are. The model is `--model`, else VLLM_MODEL, else the
first served one (and it says so). `--json` prints one JSON object at the end instead.
Exit status: 0 answered, 1 endpoint or stream failure, 2 bad usage (model not served, API
key rejected), 130 interrupted.
"""

from __future__ import annotations

import asyncio
import json
import sys
from contextlib import aclosing
from typing import Any, TextIO

from vllm_console.config import Settings
from vllm_console.core.endpoint.client import (
    Delta,
    Done,
    EndpointStatus,
    make_client,
    probe,
    stream_chat,
)
from vllm_console.core.text import visible, visible_lines

OK, FAILED, BAD_USAGE, INTERRUPTED = 0, 1, 2, 130


def _say(line: str) -> None:
    # Lines quote the server: its model names, its errors.
    print(visible(f"vllm-console: {line}"), file=sys.stderr, flush=True)


def _choose_model(
    settings: Settings, status: EndpointStatus, model: str | None
) -> tuple[str | None, int]:
    """The model to ask, or None and the exit status after saying why."""
    if model:
        chosen, origin = model, "--model"
    elif settings.model:
        chosen, origin = settings.model, f"VLLM_MODEL, from {settings.origin('VLLM_MODEL')}"
    elif status.models:
        first = status.models[0].id
        _say(f"using {first!r}, the first served model (choose with --model or VLLM_MODEL)")
        return first, OK
    else:
        why = status.problems[0] if status.problems else "it lists no models"
        _say(f"no model to ask at {status.base_url}: {why}; pass --model")
        return None, BAD_USAGE if status.models_listed else FAILED
    if status.serves(chosen) is False:
        served = ", ".join(status.model_ids) or "none"
        _say(f"model {chosen!r} ({origin}) is not served at {status.base_url}; served: {served}")
        return None, BAD_USAGE
    return chosen, OK


def _messages(prompt: str, system: str | None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": prompt}]


def json_line(value: object) -> str:
    """JSON that keeps non-ASCII text readable and escapes every non-printable character.

    `ensure_ascii=False` would let DEL, C1 controls and bidi overrides through raw; as `\\uXXXX`
    escapes they are the same JSON string and harmless on a terminal.
    """
    text = json.dumps(value, ensure_ascii=False)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else json.dumps(char)[1:-1] for char in text)


def _result(done: Done) -> dict[str, Any]:
    stats = done.stats.to_json()
    result: dict[str, Any] = {"text": done.text, **stats}
    if done.reasoning:
        result["reasoning"] = done.reasoning
    return result


async def _chat(
    settings: Settings,
    prompt: str,
    *,
    model: str | None,
    system: str | None,
    as_json: bool,
    max_tokens: int | None,
    temperature: float | None,
    out: TextIO,
) -> int:
    base = settings.base_url
    async with make_client(base) as client:
        status = await probe(base, settings.api_key, client=client)
        if not status.reachable:
            _say(f"cannot reach {base}: {'; '.join(status.problems)}")
            return FAILED
        if status.key_rejected:
            _say(f"{base}: {status.problems[0]}")
            return BAD_USAGE
        chosen, code = _choose_model(settings, status, model)
        if chosen is None:
            return code
        events = stream_chat(
            client,
            base,
            settings.api_key,
            chosen,
            _messages(prompt, system),
            temperature=temperature,
            max_tokens=max_tokens,
        )
        done: Done | None = None
        # A person at a terminal reads the answer: a model (or whoever runs the endpoint) must
        # not move the cursor or retitle the window. A pipe gets the answer as it came.
        shown = visible_lines if out.isatty() else str
        async with aclosing(events):
            async for event in events:
                if isinstance(event, Delta):
                    if not as_json and not event.reasoning:
                        out.write(shown(event.text))
                        out.flush()
                elif isinstance(event, Done):
                    done = event
    assert done is not None  # stream_chat always ends with one
    stats = done.stats
    if as_json:
        out.write(json_line(_result(done)) + "\n")
    else:
        if done.text and not done.text.endswith("\n"):
            out.write("\n")
        print(visible(stats.summary()), file=sys.stderr)
    out.flush()
    if not stats.ok:
        kept = " (the partial answer is kept)" if done.text and not as_json else ""
        _say(f"{stats.error or 'the answer was cut short'}{kept}")
        return FAILED
    return OK


def cmd_chat(
    settings: Settings,
    prompt: str,
    *,
    model: str | None,
    system: str | None,
    as_json: bool,
    max_tokens: int | None,
    temperature: float | None,
) -> int:
    try:
        return asyncio.run(
            _chat(
                settings,
                prompt,
                model=model,
                system=system,
                as_json=as_json,
                max_tokens=max_tokens,
                temperature=temperature,
                out=sys.stdout,
            )
        )
    except KeyboardInterrupt:  # the stream was closed on the way out: the server stops too
        print(file=sys.stderr)
        return INTERRUPTED
