"""The console's own load runner: one concurrency step of streamed completions.

What vLLM's benchmark does with `--max-concurrency C`: each prompt is sent when its time in
the step's schedule has come (`arrivals`; all at once by default) and fewer than C are in
flight. Here C workers take the next prompt that is due, in turn: the same schedule without a
task per prompt. Each worker keeps one connection of its
own (`wire.Wire`, read in callbacks: the cheapest way for Python to read thousands of tokens
a second), as vLLM's client keeps a pool of C; an endpoint that a proxy setting applies to is
read through httpx instead, which honours it. Each request is timed by `stream` and named, as
vLLM's benchmark names its own, by an `x-request-id` of the step's prefix and its number (the
server's log says which request was whose); progress is reported after each one. Cancelling
the step cancels the workers, which close their connections: the server stops generating at
once.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from vllm_console.core.bench.prompts import Prompt
from vllm_console.core.bench.stats import CONSOLE, RequestResult, StepResult, summarize
from vllm_console.core.bench.stream import (
    READ_TIMEOUT_S,
    completion_body,
    request_once,
    wire_once,
)
from vllm_console.core.bench.wire import Wire
from vllm_console.core.endpoint.capped import CONNECT_TIMEOUT_S
from vllm_console.core.endpoint.client import is_loopback


@dataclass(frozen=True)
class Target:
    base_url: str  # with /v1
    model: str
    api_key: str | None = None

    @property
    def completions_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/completions"

    def headers(self) -> dict[str, str]:
        auth = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return {**auth, "Accept": "text/event-stream"}


@dataclass(frozen=True)
class Progress:
    concurrency: int
    done: int
    failed: int
    total: int
    elapsed_s: float


ProgressFn = Callable[[Progress], None]


def client_for(concurrency: int, base_url: str) -> httpx.AsyncClient:
    """A client whose pool holds one connection per stream in flight (httpx's default
    pool of 100 would queue a wider step inside the client, and time the queue)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(30.0, connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S)
    return httpx.AsyncClient(timeout=timeout, trust_env=not is_loopback(base_url), limits=limits)


def direct(base_url: str) -> bool:
    """Whether the load goes straight to the endpoint: no proxy setting applies to it (what
    httpx's `trust_env` would honour)."""
    parts = urlsplit(base_url)
    if is_loopback(base_url) or parts.scheme not in ("http", "https"):
        return parts.scheme in ("http", "https")
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return True
    return bool(urllib.request.proxy_bypass(parts.hostname or ""))


async def run_step(
    client: httpx.AsyncClient,
    target: Target,
    prompts: Sequence[Prompt],
    output_len: int,
    concurrency: int,
    progress: ProgressFn | None = None,
    arrivals: Sequence[float] | None = None,
) -> StepResult:
    """Send every prompt, at most `concurrency` at a time, none before its time in
    `arrivals` (seconds after the start, one per prompt; None: all at once); the step's
    figures."""
    results: list[RequestResult] = []
    headers = target.headers()
    total = len(prompts)
    workers = min(concurrency, total)
    due: asyncio.Queue[tuple[int, Prompt] | None] = asyncio.Queue()
    prefix = f"vllm-console-bench-{secrets.token_hex(4)}-"
    own = direct(target.base_url)
    start = time.perf_counter()
    failed = 0

    async def arrive() -> None:
        for number, prompt in enumerate(prompts):
            if arrivals is not None:
                wait = start + arrivals[number] - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
            due.put_nowait((number, prompt))
        for _ in range(workers):
            due.put_nowait(None)

    async def worker() -> None:
        nonlocal failed
        wire = Wire(target.completions_url, CONNECT_TIMEOUT_S, READ_TIMEOUT_S) if own else None
        try:
            while (item := await due.get()) is not None:
                number, prompt = item
                body = completion_body(target.model, prompt, output_len)
                named = {**headers, "x-request-id": f"{prefix}{number}"}
                if wire is not None:
                    result = await wire_once(wire, body, named)
                else:
                    result = await request_once(client, target.completions_url, body, named)
                results.append(result)
                failed += not result.ok
                if progress is not None:
                    elapsed = time.perf_counter() - start
                    progress(Progress(concurrency, len(results), failed, total, elapsed))
        finally:
            if wire is not None:
                wire.close()

    async with asyncio.TaskGroup() as group:
        group.create_task(arrive())
        for _ in range(workers):
            group.create_task(worker())
    duration = time.perf_counter() - start
    return summarize(
        results, concurrency=concurrency, duration_s=duration, num_prompts=total, source=CONSOLE
    )
