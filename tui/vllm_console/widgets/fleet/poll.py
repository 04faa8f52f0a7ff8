"""Reading every polled member's /metrics together, off the screen's path.

`read_metrics` asks one server through the one capped reader (`core.endpoint.capped`): a
deadline for the whole answer (a server that drips bytes cannot hold the poll) and at most
METRICS_CAP bytes of it (vLLM's is ~60 KB; a body past the cap is a problem, not a parse),
then parses it in a thread. Nothing raises: a dead
endpoint, a refusal or a body that is not vLLM's metrics is an empty snapshot with its
problem. `Poll` keeps one client per kind of endpoint (loopback ones ignore proxy
variables, see `core.endpoint.client.make_client`) and the last good snapshot of each member,
for rates.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from vllm_console.core.endpoint.capped import fetch
from vllm_console.core.endpoint.client import is_loopback, make_client, server_root
from vllm_console.core.endpoint.metrics import MetricsSnapshot, parse_metrics, rates
from vllm_console.widgets.fleet.cells import Reading

POLL_INTERVAL_S = 2.0
READ_DEADLINE_S = 3.0  # for the whole answer, the body included
METRICS_CAP = 4 << 20  # bytes; vLLM's /metrics is ~60 KB, hundreds with many engines


@dataclass(frozen=True)
class Target:
    """Where one member's metrics are: its base URL (with or without /v1), and its key."""

    url: str
    api_key: str | None = None


def _problem(url: str, text: str) -> MetricsSnapshot:
    return MetricsSnapshot(time.monotonic(), problems=(f"{url}: {text}",))


async def read_metrics(
    client: httpx.AsyncClient,
    base_url: str,
    api_key: str | None = None,
    deadline: float = READ_DEADLINE_S,
) -> MetricsSnapshot:
    """One server's /metrics, parsed in a thread; trouble is a problem, never an exception."""
    url = f"{server_root(base_url)}/metrics"
    answer = await fetch(client, url, api_key=api_key, limit=METRICS_CAP, timeout=deadline)
    if answer.error is not None:
        return _problem(url, answer.error)
    if answer.status != 200:
        return _problem(url, f"answered HTTP {answer.status}")
    return await asyncio.to_thread(parse_metrics, answer.text())


class Poll:
    """The clients and the last good reading of each member, across polls."""

    def __init__(self) -> None:
        self._clients: dict[bool, httpx.AsyncClient] = {}
        self._good: dict[str, MetricsSnapshot] = {}

    def _client(self, url: str) -> httpx.AsyncClient:
        loopback = is_loopback(url)
        client = self._clients.get(loopback)
        if client is None:
            client = self._clients[loopback] = make_client(url if loopback else None)
        return client

    async def read(self, targets: Mapping[str, Target]) -> dict[str, Reading]:
        """Every target at once; each member's reading with its rates."""
        names = list(targets)
        snaps = await asyncio.gather(
            *(read_metrics(self._client(t.url), t.url, t.api_key) for t in targets.values())
        )
        for gone in set(self._good) - set(names):
            del self._good[gone]
        return {name: self._reading(name, snap) for name, snap in zip(names, snaps, strict=True)}

    def _reading(self, name: str, snapshot: MetricsSnapshot) -> Reading:
        earlier = self._good.pop(name, None)
        if snapshot.empty:
            return Reading(snapshot)
        self._good[name] = snapshot
        return Reading(snapshot, rates(earlier, snapshot) if earlier is not None else None)

    async def __aenter__(self) -> Poll:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        self._clients.clear()
