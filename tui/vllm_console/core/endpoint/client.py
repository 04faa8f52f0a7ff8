"""An OpenAI-compatible endpoint, as the console sees it: probe it, and stream a chat answer.

`probe` asks the server root's `/health` and `/version` (vLLM serves them outside `/v1`) and
`{base_url}/models` (each answer capped in size and time: `capped.fetch`), and returns an
`EndpointStatus`: an unreachable endpoint, a rejected key or a model that is not served are
values with one-line explanations, never exceptions.

`stream_chat` is an async generator of `Delta` (text), `Usage` and, last, `Done` (the whole
answer and its `ChatStats`). Every failure, from a refused connection to a server that hangs
up mid-answer, ends in a `Done` whose stats name it, the partial answer kept. The SSE reading
is `core.sse.ChatParser` (pure, fed with bytes); its event types are re-exported here.
Stopping the iteration (`aclose()`, or cancelling the task that iterates; wrap the generator
in `contextlib.aclosing` when the consumer can be cancelled between events) closes
the HTTP response, hence the connection, so the server stops generating.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from vllm_console.core.endpoint.capped import (
    CONNECT_TIMEOUT_S,
    describe_error,
    error_body,
    fetch,
)
from vllm_console.core.endpoint.sse import ChatEvent, ChatParser, ChatStats, Delta, Done, Usage

__all__ = [
    "ChatEvent",
    "ChatParser",
    "ChatStats",
    "Delta",
    "Done",
    "EndpointStatus",
    "ServedModel",
    "Usage",
    "describe_error",
    "make_client",
    "probe",
    "server_root",
    "stream_chat",
]

READ_TIMEOUT_S = 300.0  # between chunks: reasoning models can think quietly for minutes
PROBE_TIMEOUT_S = 5.0

Message = Mapping[str, str]


def server_root(base_url: str) -> str:
    """http://host:8000/v1 -> http://host:8000, where vLLM serves /health, /version, /metrics."""
    url = base_url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def is_loopback(url: str) -> bool:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:  # not a URL: httpx will say so
        return False
    return host in ("localhost", "::1") or host.startswith("127.")


def make_client(
    base_url: str | None = None, *, read_timeout: float = READ_TIMEOUT_S
) -> httpx.AsyncClient:
    """A client with a short connect timeout and a generous between-chunks one.

    Proxy variables are ignored for a loopback endpoint: a corporate HTTP_PROXY without
    NO_PROXY would otherwise send `localhost:8000` to the proxy.
    """
    timeout = httpx.Timeout(30.0, connect=CONNECT_TIMEOUT_S, read=read_timeout)
    trust_env = not (base_url and is_loopback(base_url))
    return httpx.AsyncClient(timeout=timeout, trust_env=trust_env, verify=_tls_context())


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~50 ms; the console makes a client per endpoint it tries.
    return httpx.create_ssl_context()


def _auth(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


# --- probe ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedModel:
    id: str
    max_model_len: int | None = None
    owned_by: str | None = None


@dataclass(frozen=True)
class EndpointStatus:
    """What one probe of an endpoint found. `problems` stop a chat; `warnings` do not."""

    base_url: str
    reachable: bool
    healthy: bool | None = None  # /health answered 200; None: it could not be asked
    is_vllm: bool = False
    version: str | None = None
    models: tuple[ServedModel, ...] = ()
    models_listed: bool = False
    key_rejected: bool = False
    expected_model: str | None = None
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def model_ids(self) -> tuple[str, ...]:
        return tuple(model.id for model in self.models)

    @property
    def ok(self) -> bool:
        return self.reachable and not self.problems

    def serves(self, model: str) -> bool | None:
        """Whether `model` is served; None when the list could not be read."""
        return model in self.model_ids if self.models_listed else None

    def summary(self) -> str:
        if not self.reachable:
            return f"{self.base_url}: unreachable ({'; '.join(self.problems)})"
        kind = f"vLLM {self.version}" if self.is_vllm else "OpenAI-compatible (not vLLM)"
        served = ", ".join(self.model_ids) or "no models listed"
        return f"{self.base_url}: {kind}; serves {served}"


@dataclass(frozen=True)
class _Answer:
    status: int | None
    body: Any = None
    error: str | None = None


async def _get(client: httpx.AsyncClient, url: str, api_key: str | None, timeout: float) -> _Answer:
    answer = await fetch(client, url, api_key=api_key, timeout=timeout)
    return _Answer(answer.status, answer.json(), answer.error)


async def probe(
    base_url: str,
    api_key: str | None = None,
    expected_model: str | None = None,
    *,
    client: httpx.AsyncClient | None = None,
    timeout: float = PROBE_TIMEOUT_S,
) -> EndpointStatus:
    """Ask /health, /version and /models at once; never raises for network trouble."""
    base = base_url.rstrip("/")
    root = server_root(base)
    own = client is None
    http = client if client is not None else make_client(base)
    try:
        health, version, models = await asyncio.gather(
            _get(http, f"{root}/health", api_key, timeout),
            _get(http, f"{root}/version", api_key, timeout),
            _get(http, f"{base}/models", api_key, timeout),
        )
    finally:
        if own:
            await http.aclose()
    return _judge(base, api_key, expected_model, health, version, models)


def _parse_models(body: Any) -> tuple[ServedModel, ...] | None:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return None
    found: list[ServedModel] = []
    for card in data:
        if isinstance(card, dict) and isinstance(card.get("id"), str):
            length = card.get("max_model_len")
            owner = card.get("owned_by")
            found.append(
                ServedModel(
                    card["id"],
                    length if isinstance(length, int) else None,
                    owner if isinstance(owner, str) else None,
                )
            )
    return tuple(found)


def _judge(
    base: str,
    api_key: str | None,
    expected: str | None,
    health: _Answer,
    version: _Answer,
    models: _Answer,
) -> EndpointStatus:
    if all(a.status is None for a in (health, version, models)):
        reason = models.error or health.error or "no answer"
        return EndpointStatus(base, False, expected_model=expected, problems=(reason,))
    problems: list[str] = []
    warnings: list[str] = []
    listed = _parse_models(models.body) if models.status == 200 else None
    key_rejected = models.status in (401, 403)
    if key_rejected:
        hint = "check VLLM_API_KEY" if api_key else "no key was sent: set VLLM_API_KEY"
        problems.append(f"API key rejected (HTTP {models.status}): {hint}")
    elif models.error is not None:  # no answer, or one broken off, too slow or too big
        problems.append(f"{base}/models: {models.error}")
    elif listed is None:
        hint = "" if base.endswith("/v1") else " (does the base URL need /v1?)"
        problems.append(f"{base}/models answered HTTP {models.status}, not a model list{hint}")
    served = listed or ()
    if listed is not None and not served:
        problems.append("the endpoint serves no models")
    if expected and listed is not None and served and expected not in {m.id for m in served}:
        names = ", ".join(m.id for m in served)
        problems.append(f"model {expected!r} is not served here; served: {names}")
    body = version.body
    ver = body.get("version") if version.status == 200 and isinstance(body, dict) else None
    ver = ver if isinstance(ver, str) else None
    is_vllm = ver is not None and (not served or any(m.owned_by == "vllm" for m in served))
    if not is_vllm:
        warnings.append("not a vLLM server (no /version): chat works, server metrics do not")
    elif health.status != 200:
        state = f"HTTP {health.status}" if health.status else health.error
        warnings.append(f"/health answered {state}: the engine may be unwell")
    return EndpointStatus(
        base,
        True,
        healthy=None if health.status is None else health.status == 200,
        is_vllm=is_vllm,
        version=ver,
        models=served,
        models_listed=listed is not None,
        key_rejected=key_rejected,
        expected_model=expected,
        problems=tuple(problems),
        warnings=tuple(warnings),
    )


# --- chat stream ------------------------------------------------------------------------


def chat_body(
    model: str,
    messages: Sequence[Message],
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    include_usage: bool = True,
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
    body["stream"] = True
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    for key, value in (("temperature", temperature), ("top_p", top_p), ("max_tokens", max_tokens)):
        if value is not None:
            body[key] = value
    return body


def _http_error(response: httpx.Response, content: bytes) -> str:
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):  # not JSON, cut short, or nested too deep
        body = None
    err = body.get("error", body) if isinstance(body, dict) else None
    message = err.get("message") or err.get("detail") if isinstance(err, dict) else err
    if response.status_code in (401, 403):
        return f"API key rejected (HTTP {response.status_code})"
    text = str(message) if message else response.reason_phrase
    return f"HTTP {response.status_code}: {text}"


async def stream_chat(
    client: httpx.AsyncClient,
    base_url: str,
    api_key: str | None,
    model: str,
    messages: Sequence[Message],
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    read_timeout: float = READ_TIMEOUT_S,
    include_usage: bool = True,
) -> AsyncGenerator[ChatEvent, None]:
    """Stream one chat answer: `Delta`s and `Usage`, then always one `Done`."""
    url = f"{base_url.rstrip('/')}/chat/completions"
    body = chat_body(
        model,
        messages,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        include_usage=include_usage,
    )
    headers = {**_auth(api_key), "Accept": "text/event-stream"}
    timeout = httpx.Timeout(30.0, connect=CONNECT_TIMEOUT_S, read=read_timeout)
    parser = ChatParser()
    error: str | None = None
    status: int | None = None
    dropped = False
    try:
        async with client.stream(
            "POST", url, json=body, headers=headers, timeout=timeout
        ) as response:
            status = response.status_code
            if status != 200:
                error = _http_error(response, await error_body(response))
            else:
                async for chunk in response.aiter_bytes():
                    events = parser.feed(chunk)
                    for event in events:
                        yield event
                    if parser.done:
                        break
                else:
                    for event in parser.end():
                        yield event
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        error = describe_error(exc, read_timeout)
        dropped = status == 200
    stats = parser.stats(model, error=error, dropped=dropped, status=status)
    yield Done(stats, "".join(parser.text), "".join(parser.reasoning))
