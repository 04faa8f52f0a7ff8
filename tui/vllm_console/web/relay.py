"""One browser session's console process, and textual's web-driver protocol to it.

textual-serve's `AppService` runs its command through a shell and keeps the process to
itself; the console needs more of it: a session of its own (so a Ctrl-C in the terminal of
`vllm-console web` reaches only the server, which then decides), a parent-death signal (a
SIGKILL of the server kills the console, whose servers' watchdogs then stop them, as after
the console's own SIGKILL), and a signal to stop it the way quitting does. The protocol is
textual's: the console says `__GANGLION__`, then packets of one type byte (D data, M meta,
P packed), a four-byte big-endian length and the payload, both ways.

Browser envelopes are JSON lists from textual-serve's client; `parse_envelope` takes only
the shapes it sends and drops everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

PR_SET_PDEATHSIG = 1
PRELUDE = b"__GANGLION__\n"
PRELUDE_LINES = 10  # lines a starting console may print before the prelude
MAX_CELLS = 1000  # a terminal wider or taller than this is a lie
MAX_STDIN = 1 << 16  # characters of typed or pasted text in one envelope
STOP_WAIT = 60.0  # seconds a stopping console gets (its servers' grace) before SIGKILL

CONSOLE_MODULE = "vllm_console.web.console"
# What the web server tells each console, in its environment:
ENV_FILE_ENV = "VLLM_CONSOLE_WEB_ENV_FILE"  # the --env-file given to `web`
KEEP_ENV = "VLLM_CONSOLE_WEB_KEEP_SERVERS"  # "1": SIGTERM leaves the servers running
LEFT_FILE_ENV = "VLLM_CONSOLE_WEB_LEFT_FILE"  # where it lists the runs closed tabs left


def _kill_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True)
class Envelope:
    """One message from the browser: typed text, a new size, a ping, focus or blur."""

    kind: str  # "stdin", "resize", "ping", "focus", "blur"
    text: str = ""
    width: int = 0
    height: int = 0


def parse_envelope(raw: str | bytes) -> Envelope | None:
    """The browser's message, or None for anything that is not one of its shapes."""
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, list) or not message or not isinstance(message[0], str):
        return None
    kind, data = message[0], message[1] if len(message) > 1 else None
    if kind == "stdin" and isinstance(data, str) and len(data) <= MAX_STDIN:
        return Envelope("stdin", text=data)
    if kind == "resize" and isinstance(data, dict):
        width, height = data.get("width"), data.get("height")
        if _cells(width) and _cells(height):
            assert isinstance(width, int) and isinstance(height, int)
            return Envelope("resize", width=width, height=height)
        return None
    if kind == "ping" and isinstance(data, str) and len(data) <= 64:
        return Envelope("ping", text=data)
    if kind in ("focus", "blur"):
        return Envelope(kind)
    return None


def _cells(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_CELLS


def cells_from_query(value: str | None, default: int) -> int:
    """A size the page asked for in its websocket URL; the default when it makes no sense."""
    try:
        number = int(value or "")
    except ValueError:
        return default
    return number if 1 <= number <= MAX_CELLS else default


def packet(kind: bytes, payload: bytes) -> bytes:
    return kind + len(payload).to_bytes(4, "big") + payload


def console_environment(base: Mapping[str, str], width: int, height: int) -> dict[str, str]:
    """The console's environment: `base` (the web server's, with the settings its command
    line gave) and what makes Textual speak to a pipe instead of a terminal."""
    env = dict(base)
    env.update(
        TEXTUAL_DRIVER="textual.drivers.web_driver:WebDriver",
        TEXTUAL_FPS="60",
        TEXTUAL_COLOR_SYSTEM="truecolor",
        TERM_PROGRAM="textual",
        COLUMNS=str(width),
        ROWS=str(height),
    )
    return env


class Relay:
    """A console process for one browser session: start it, feed it, stop it."""

    def __init__(
        self,
        env: Mapping[str, str],
        send_bytes: Callable[[bytes], Awaitable[None]],
        send_text: Callable[[str], Awaitable[None]],
        close: Callable[[], Awaitable[object]],
    ) -> None:
        self._env = env
        self._send_bytes = send_bytes
        self._send_text = send_text
        self._close = close
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self.errors = bytearray()  # what the console said on stderr, for when it fails

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process is not None else None

    async def start(self) -> None:
        # From the event loop's thread: the parent-death signal follows the forking thread.
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            CONSOLE_MODULE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(self._env),
            start_new_session=True,
            preexec_fn=_kill_with_parent,
        )
        self._reader = asyncio.create_task(self._read())

    async def handle(self, envelope: Envelope) -> None:
        if envelope.kind == "stdin":
            await self._write(b"D", envelope.text.encode("utf-8", "replace"))
        elif envelope.kind == "resize":
            await self._meta({"type": "resize", "width": envelope.width, "height": envelope.height})
        elif envelope.kind == "ping":
            await self._send_text(json.dumps(["pong", envelope.text]))
        else:
            await self._meta({"type": envelope.kind})

    async def quit(self) -> None:
        """The tab went away: ask the console to end (it leaves its servers running)."""
        await self._meta({"type": "quit"})
        await self.wait()

    async def terminate(self) -> None:
        """The web server stops: SIGTERM, which the console takes as quitting (stopping
        what it started unless told to keep it)."""
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        await self.wait()

    async def wait(self) -> None:
        """Until the console has exited; SIGKILL (its watchdogs then stop its servers) if
        it takes longer than a stop may."""
        process = self._process
        if process is None:
            return
        try:
            await asyncio.wait_for(process.wait(), STOP_WAIT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        if self._reader is not None:
            await self._reader

    async def _write(self, kind: bytes, payload: bytes) -> None:
        process = self._process
        if process is None or process.stdin is None or process.returncode is not None:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            process.stdin.write(packet(kind, payload))
            await process.stdin.drain()

    async def _meta(self, data: Mapping[str, object]) -> None:
        await self._write(b"M", json.dumps(data).encode())

    async def _read(self) -> None:
        assert self._process is not None
        stdout, stderr = self._process.stdout, self._process.stderr
        assert stdout is not None and stderr is not None
        errors = asyncio.create_task(self._read_errors(stderr))
        try:
            for _ in range(PRELUDE_LINES):
                line = await stdout.readline()
                if not line or line == PRELUDE:
                    break
            while True:
                kind = await stdout.readexactly(1)
                size = int.from_bytes(await stdout.readexactly(4), "big")
                payload = await stdout.readexactly(size)
                await self._on_packet(kind, payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            await errors
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._close()

    async def _read_errors(self, stderr: asyncio.StreamReader) -> None:
        while chunk := await stderr.read(4096):
            self.errors += chunk
            del self.errors[: max(0, len(self.errors) - 65536)]

    async def _on_packet(self, kind: bytes, payload: bytes) -> None:
        if kind == b"D":
            await self._send_bytes(payload)
        elif kind == b"M":
            with contextlib.suppress(ValueError):
                meta = json.loads(payload)
                if isinstance(meta, dict) and meta.get("type") == "exit":
                    await self._close()
        # P (packed: file deliveries) is not used by the console.
