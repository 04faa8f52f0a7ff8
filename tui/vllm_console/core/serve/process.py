"""ServerProcess: spawn `vllm serve`, stream its lines, know when it is ready, stop it fully.

vLLM renames its children (`VLLM::EngineCore`, `VLLM::Worker`) and they survive a SIGKILL of
the API server while holding the GPU. So the server starts in a session of its own, and stop
means: SIGTERM to the API server alone, a grace period, then SIGKILL to the whole process
group, and "stopped" only once no process of that session is left.

The console's death must take the server down, in one of two ways:

- default: a parent-death signal (PR_SET_PDEATHSIG). It fires when the *thread* that forked
  exits, so spawn from the event-loop thread, never from a short-lived worker thread.
- `detachable=True`: a parent-death signal cannot be cleared from outside, so a server the
  user may choose to leave running gets a watchdog instead: a tiny stdlib-only process in a
  session of its own that holds the read end of a pipe from us. End of file on that pipe (we
  died, even by SIGKILL) makes it stop the server exactly as `stop` does. `detach()` tells it
  to stand down instead; it then keeps copying the server's output into the run's log file,
  so a server left running neither writes into a broken pipe nor loses its log.

Processes are `subprocess.Popen` objects rather than asyncio's: asyncio kills a child whose
transport is closed or collected, which a server left running must survive.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vllm_console.core.serve.proctable import session_pids
from vllm_console.core.serve.redact import API_KEY_ENV, redact_text
from vllm_console.core.serve.watchdog import WATCHDOG, WATCHDOG_SECRETS

PR_SET_PDEATHSIG = 1
LINE_LIMIT = 1 << 20
READ_SIZE = 1 << 16


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
        self,
        argv: Sequence[str],
        env_add: Mapping[str, str],
        *,
        cwd: Path | None = None,
        detachable: bool = False,
        watchdog_grace: float = 15.0,
        detached_log: Path | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        """`secrets` (the API key) are replaced by *** in every line of output, ours and the
        watchdog's, before anyone sees it: the one place the server's log is redacted."""
        self.argv = list(argv)
        self.env_add = dict(env_add)
        self.secrets = tuple(s for s in secrets if s)
        self.cwd = cwd
        self.detachable = detachable
        self.watchdog_grace = watchdog_grace
        self.detached_log = detached_log
        self.detached = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._control: int | None = None
        self._reader: asyncio.StreamReader | None = None
        self._transport: asyncio.ReadTransport | None = None
        self.started_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    @property
    def watchdog_pid(self) -> int | None:
        return self._watchdog.pid if self._watchdog else None

    async def start(self) -> None:
        # The key is the launch's to give (env_add): never one the console inherited.
        inherited = {k: v for k, v in os.environ.items() if k != API_KEY_ENV}
        env = {**inherited, **self.env_add, "PYTHONUNBUFFERED": "1"}
        read_fd, write_fd = os.pipe()
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=None if self.detachable else _set_parent_death_signal,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self.started_at = time.monotonic()
        if self.detachable:
            self._start_watchdog(read_fd)
        loop = asyncio.get_running_loop()
        self._reader = asyncio.StreamReader(limit=LINE_LIMIT)
        protocol = asyncio.StreamReaderProtocol(self._reader)
        self._transport, _ = await loop.connect_read_pipe(
            lambda: protocol, os.fdopen(read_fd, "rb", buffering=0)
        )

    def _start_watchdog(self, out_fd: int) -> None:
        assert self._proc is not None
        control_read, self._control = os.pipe()
        log = str(self.detached_log) if self.detached_log else os.devnull
        try:
            self._watchdog = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WATCHDOG,
                    str(self._proc.pid),
                    str(self.watchdog_grace),
                    str(out_fd),
                    log,
                ],
                stdin=control_read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, WATCHDOG_SECRETS: json.dumps(self.secrets)},
                pass_fds=(out_fd,),
                start_new_session=True,  # a hangup of our terminal must not reach it
            )
        finally:
            os.close(control_read)

    async def lines(self) -> AsyncIterator[str]:
        """Output lines one by one; see `batches`."""
        async for batch in self.batches():
            for line in batch:
                yield line

    async def batches(self) -> AsyncIterator[list[str]]:
        """Output lines until the child closes its output: see `read_batches`."""
        assert self._reader is not None
        async for batch in read_batches(self._reader, self.secrets):
            yield batch

    async def wait(self) -> int:
        assert self._proc is not None
        while (code := self._proc.poll()) is None:
            await asyncio.sleep(0.05)
        return code

    def survivors(self) -> list[int]:
        return session_pids(self.pid) if self.pid else []

    async def stop(self, grace: float = 15.0) -> StopReport:
        """SIGTERM the API server, wait up to `grace`, then SIGKILL the group; confirm empty."""
        start = time.monotonic()
        proc, killed = self._proc, False
        if proc is None:
            return StopReport(0.0, False, (), None)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if not await self._gone_within(grace):
            killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await self._gone_within(5.0)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.wait(), 5.0)
        survivors = tuple(self.survivors())
        await self._dismiss_watchdog()
        return StopReport(time.monotonic() - start, killed, survivors, proc.poll())

    async def _gone_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._proc is not None:
                self._proc.poll()  # reap the API server, so it does not linger as a zombie
            if not self.survivors():
                return True
            await asyncio.sleep(0.05)
        return not self.survivors()

    def _tell_watchdog(self, word: bytes) -> None:
        if self._control is None:
            return
        with contextlib.suppress(OSError):
            os.write(self._control, word)
        os.close(self._control)
        self._control = None

    async def _dismiss_watchdog(self) -> None:
        self._tell_watchdog(b"exit")
        watchdog = self._watchdog
        deadline = time.monotonic() + 2.0
        while watchdog is not None and watchdog.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def _close_output(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def detach(self) -> bool:
        """Leave the server running when we exit; False if it was not started detachable.

        We stop reading its output first, then the watchdog appends the rest to
        `detached_log`. Leaving the `async with` block then no longer stops the server.
        """
        if self._watchdog is None or self._control is None or self.returncode is not None:
            return False
        self._close_output()
        self._tell_watchdog(b"detach")
        self.detached = True
        return True

    async def __aenter__(self) -> ServerProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.detached:
            return
        await asyncio.shield(self.stop())
        self._close_output()


async def read_batches(
    reader: asyncio.StreamReader, secrets: Sequence[str] = ()
) -> AsyncIterator[list[str]]:
    """The lines `reader` brings, as many as one read holds (a chatty server writes thousands
    a second: an event per line would cost the console more than drawing them), with
    `secrets` hidden. A progress bar's \\r splits lines, blank lines are dropped, a line over
    LINE_LIMIT is cut there, and a last line without its newline comes at the end."""
    rest = b""
    while True:
        chunk = await reader.read(READ_SIZE)
        if not chunk:
            if rest and (batch := split_lines(rest, secrets)):
                yield batch
            return
        data = rest + chunk
        end = data.rfind(b"\n") + 1
        if end == 0 and len(data) >= LINE_LIMIT:
            end = len(data)
        data, rest = data[:end], data[end:]
        if data and (batch := split_lines(data, secrets)):
            yield batch


def split_lines(data: bytes, secrets: Sequence[str] = ()) -> list[str]:
    """`data` (whole lines: a secret is never cut in two) as the log's lines: decoded, secrets
    hidden, split at every line boundary (\\r too: a progress bar's redraws become lines of
    their own), trailing blanks and blank lines dropped."""
    text = redact_text(data.decode("utf-8", "replace"), secrets)
    return [line.rstrip() for line in text.splitlines() if line and not line.isspace()]


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read().decode("utf-8", "replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(name))
    return found


async def stop_group(pgid: int, grace: float = 15.0) -> StopReport:
    """Stop a server we did not start (a leftover) as `ServerProcess.stop` would.

    SIGTERM to the group's leader (vLLM's API server) if it lives, else to the group; after
    `grace`, SIGKILL to the group. Never our own group or session.
    """
    if pgid in (os.getpgrp(), os.getsid(0)) or pgid <= 1:
        raise ValueError(f"refusing to stop process group {pgid}: it is the console's own")
    start, killed = time.monotonic(), False
    leader_alive = pgid in group_pids(pgid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if leader_alive:
            os.kill(pgid, signal.SIGTERM)
        else:
            os.killpg(pgid, signal.SIGTERM)
    if not await _group_gone_within(pgid, grace):
        killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        await _group_gone_within(pgid, 5.0)
    survivors = tuple(group_pids(pgid))
    return StopReport(time.monotonic() - start, killed, survivors, None)


async def _group_gone_within(pgid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not group_pids(pgid):
            return True
        await asyncio.sleep(0.05)
    return not group_pids(pgid)


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
