"""The console's own load runner: one concurrency step of streamed completions.

What vLLM's benchmark does with `--max-concurrency C --request-rate inf`: every prompt is
sent as soon as fewer than C are in flight. Here C workers take the next prompt in turn,
which is the same schedule without a task per prompt. Each request is timed by
`stream.request_once` and named, as vLLM's benchmark names its own, by an `x-request-id` of
the step's prefix and its number (the server's log says which request was whose); progress is
reported after each one. Cancelling the step cancels the
workers, whose `async with` closes their responses: the server stops generating at once.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from vllm_console.core.bench.prompts import Prompt
from vllm_console.core.bench.stats import CONSOLE, RequestResult, StepResult, summarize
from vllm_console.core.bench.stream import READ_TIMEOUT_S, completion_body, request_once
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


async def run_step(
    client: httpx.AsyncClient,
    target: Target,
    prompts: Sequence[Prompt],
    output_len: int,
    concurrency: int,
    progress: ProgressFn | None = None,
) -> StepResult:
    """Send every prompt, at most `concurrency` at a time; the step's figures."""
    results: list[RequestResult] = []
    headers = target.headers()
    total = len(prompts)
    queue = iter(enumerate(prompts))
    prefix = f"vllm-console-bench-{secrets.token_hex(4)}-"
    start = time.perf_counter()
    failed = 0

    async def worker() -> None:
        nonlocal failed
        for number, prompt in queue:
            body = completion_body(target.model, prompt, output_len)
            named = {**headers, "x-request-id": f"{prefix}{number}"}
            result = await request_once(client, target.completions_url, body, named)
            results.append(result)
            failed += not result.ok
            if progress is not None:
                elapsed = time.perf_counter() - start
                progress(Progress(concurrency, len(results), failed, total, elapsed))

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, total)):
            group.create_task(worker())
    duration = time.perf_counter() - start
    return summarize(
        results, concurrency=concurrency, duration_s=duration, num_prompts=total, source=CONSOLE
    )
