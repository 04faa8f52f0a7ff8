"""ServerProcess: spawn `vllm serve`, stream its lines, know when it is ready, stop it fully.

vLLM renames its children (`VLLM::EngineCore`, `VLLM::Worker`) and they survive a SIGKILL of
the API server while holding the GPU. So the server starts in a session of its own, with a
parent-death signal (the console's death reaches it), and stop means: SIGTERM to the API server
alone, a grace period, then SIGKILL to the whole process group, and "stopped" only once no
process of that session is left.

Spawn from the event-loop thread: the parent-death signal fires when the *thread* that forked
exits, so a short-lived worker thread would take the server down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vllm_console.core.procs import session_pids

PR_SET_PDEATHSIG = 1
LINE_LIMIT = 1 << 20


def _set_parent_death_signal() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


@dataclass(frozen=True)
class StopReport:
    seconds: float
    killed: bool
    survivors: tuple[int, ...]
    returncode: int | None

    @property
    def clean(self) -> bool:
        return not self.survivors


class ServerProcess:
    """One `vllm serve` child. Use `async with`: leaving the block stops the server."""

    def __init__(
        self, argv: Sequence[str], env_add: Mapping[str, str], *, cwd: Path | None = None
    ) -> None:
        self.argv = list(argv)
        self.env_add = dict(env_add)
        self.cwd = cwd
        self._proc: asyncio.subprocess.Process | None = None
        self.started_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    async def start(self) -> None:
        env = {**os.environ, **self.env_add, "PYTHONUNBUFFERED": "1"}
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=self.cwd,
            start_new_session=True,
            preexec_fn=_set_parent_death_signal,
            limit=LINE_LIMIT,
        )
        self.started_at = time.monotonic()

    async def lines(self) -> AsyncIterator[str]:
        """Output lines until the child closes its output; progress bars' \\r splits lines."""
        assert self._proc is not None and self._proc.stdout is not None
        reader = self._proc.stdout
        while True:
            try:
                raw = await reader.readline()
            except ValueError:  # a line over LINE_LIMIT: take what is buffered
                raw = await reader.read(LINE_LIMIT)
            if not raw:
                return
            for part in raw.decode("utf-8", "replace").rstrip("\n").split("\r"):
                if part.strip():
                    yield part.rstrip()

    async def wait(self) -> int:
        assert self._proc is not None
        return await self._proc.wait()

    def survivors(self) -> list[int]:
        return session_pids(self.pid) if self.pid else []

    async def stop(self, grace: float = 15.0) -> StopReport:
        """SIGTERM the API server, wait up to `grace`, then SIGKILL the group; confirm empty."""
        start = time.monotonic()
        proc, killed = self._proc, False
        if proc is None:
            return StopReport(0.0, False, (), None)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if not await self._gone_within(grace):
            killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await self._gone_within(5.0)
        with contextlib.suppress(ProcessLookupError):
            await asyncio.wait_for(proc.wait(), 5.0)
        survivors = tuple(self.survivors())
        return StopReport(time.monotonic() - start, killed, survivors, proc.returncode)

    async def _gone_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.returncode is None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._proc.wait()), 0.1)
            if not self.survivors():
                return True
            await asyncio.sleep(0.05)
        return not self.survivors()

    async def __aenter__(self) -> ServerProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.shield(self.stop())


def health_url(host: str, port: int) -> str:
    """Where to poll: a wildcard listen address is reached through loopback."""
    reach = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    if ":" in reach:
        reach = f"[{reach}]"
    return f"http://{reach}:{port}/health"


async def is_healthy(url: str, timeout: float = 2.0) -> bool:
    import httpx

    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


async def wait_healthy(server: ServerProcess, url: str, interval: float = 0.25) -> bool:
    """Poll `url` until it answers 200 (True) or the server exits (False)."""
    while server.returncode is None:
        if await is_healthy(url):
            return True
        await asyncio.sleep(interval)
    return False
