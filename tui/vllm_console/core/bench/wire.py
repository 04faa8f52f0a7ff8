"""The load runner's HTTP/1.1: one kept-alive connection per stream, read in callbacks.

A benchmark at concurrency 64 reads a few thousand small pieces a second (a token each). Read
through httpx, each piece wakes the stream's task through httpcore, anyio and h11, and that
per-read cost made the console's own event loop late by ~100 ms (p99) at 64 streams. Here an
`asyncio.Protocol` gets each read in `data_received`: the chunked framing is undone in place,
everything complete in the read goes to the SSE parser at once with one timestamp, and the
stream's task wakes once, when the answer has ended.

`Wire.post` sends one POST and returns (status, body bytes for a status other than 200); a
200's body goes to `on_body(data, now)` as it comes. The connection is kept for the next
request unless the server said `Connection: close`. Cancelling `post` aborts the connection
(the server sees it close and stops generating). Failures raise `WireError` with a short
reason. Plain `http://` and `https://` (TLS by `ssl`'s defaults); proxies are httpx's job
(`load.direct` decides).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 << 10
MAX_ERROR_BODY = 64 << 10

BodyFn = Callable[[bytes, float], None]
HEX = frozenset(b"0123456789abcdefABCDEF")


def _decimal(text: str, digits: int) -> int | None:
    """A plain decimal of at most `digits` digits, else None. `str.isdigit` alone lets in
    "²" (latin-1 0xB2), which int() refuses, and 5000 digits, which int() refuses too."""
    if 0 < len(text) <= digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def _chunk_size(line: bytes) -> int | None:
    """A chunk's size line (hex, an extension after ';'); None unless plain hex digits, which
    int(..., 16) alone does not check: it takes '-2', '+5', '0x5' and '1_0'."""
    size = line.split(b";", 1)[0].strip(b" \t")
    return int(size, 16) if 0 < len(size) <= 16 and set(size) <= HEX else None


class WireError(Exception):
    """The request failed before its answer ended; the message says how."""


class Answer(asyncio.Protocol):
    def __init__(self, read_timeout: float) -> None:
        self.transport: asyncio.Transport | None = None
        self.read_timeout = read_timeout
        self.loop = asyncio.get_running_loop()
        self.closed = False
        self.reset(None)

    def reset(self, on_body: BodyFn | None) -> None:
        self.on_body = on_body
        self.done: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.head = b""
        self.status = 0
        self.keep = True
        self.chunked = False
        self.left: int | None = None  # bytes of the body (or of the chunk) still to come
        self.buf = b""
        self.error_body = b""
        self.last_read = time.monotonic()

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.done is not None and not self.done.done():
            if self.status and not self.chunked and self.left is None:  # body until close
                self._end()
            else:
                self.done.set_exception(WireError("the server closed the connection mid-answer"))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.last_read = time.monotonic()
        if self.done is None or self.done.done():
            return
        if not self.status:
            self.head = (self.head + data).lstrip(b"\r\n")  # a late CRLF of the last answer
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > MAX_HEAD_BYTES:
                    self._fail("the answer's headers never ended")
                return
            data, self.head = self.head[end + 4 :], self.head[:end]
            if not self._read_head():
                return
        self._body(data, now)

    # -- the answer -----------------------------------------------------------------------

    def _read_head(self) -> bool:
        lines = self.head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = _decimal(parts[1], 3) if len(parts) >= 2 else None
        if status is None or not parts[0].startswith("HTTP/1.") or status < 100:
            self._fail("the answer is not HTTP/1.1")
            return False
        self.status = status
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        self.keep = headers.get("connection") != "close" and parts[0] == "HTTP/1.1"
        self.chunked = "chunked" in headers.get("transfer-encoding", "")
        length = headers.get("content-length", "")
        self.left = None if self.chunked else _decimal(length, 18)
        if self.left is None and not self.chunked:
            self.keep = False  # the body runs until the server closes
        return True

    def _body(self, data: bytes, now: float) -> None:
        if not self.chunked:
            if self.left is not None:
                data = data[: self.left]
                self.left -= len(data)
            self._deliver(data, now)
            if self.left == 0:
                self._end()
            return
        buf = self.buf + data if self.buf else data
        pieces: list[bytes] = []
        pos = 0
        ended = False
        while True:
            if self.left is not None and self.left > 0:  # inside a chunk
                piece = buf[pos : pos + self.left]
                pieces.append(piece)
                pos += len(piece)
                self.left -= len(piece)
                if self.left:
                    break
                self.left = -2  # its CRLF
            if self.left == -2:
                if len(buf) - pos < 2:
                    break
                pos += 2
                self.left = None
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if len(buf) - pos > 1024:
                    self._fail("a chunk's size line never ended")
                    return
                break
            size = _chunk_size(buf[pos:eol])
            if size is None:
                self._fail("a chunk's size is not a number")
                return
            pos = eol + 2
            if size == 0:
                ended = True  # trailers, if any, are not read: the answer is over
                break
            self.left = size
        self.buf = b"" if ended else buf[pos:]
        if pieces:
            self._deliver(b"".join(pieces), now)
        if ended:
            self._end()

    def _deliver(self, data: bytes, now: float) -> None:
        if not data:
            return
        if self.status == 200 and self.on_body is not None:
            self.on_body(data, now)
        elif len(self.error_body) < MAX_ERROR_BODY:
            self.error_body += data[: MAX_ERROR_BODY - len(self.error_body)]

    def _end(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result((self.status, self.error_body, self.keep))

    def _fail(self, why: str) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(WireError(why))
        if self.transport is not None:
            self.transport.abort()

    def _watch(self) -> None:
        """No byte for `read_timeout` seconds ends the request (checked, not re-armed per
        read: a timer per read would cost what this module saves)."""
        if self.done is None or self.done.done():
            return
        idle = time.monotonic() - self.last_read
        if idle >= self.read_timeout:
            self._fail(f"no answer for {self.read_timeout:g} s")
        else:
            self.loop.call_later(self.read_timeout - idle, self._watch)


class Wire:
    """One connection to `url`'s server, opened when first needed, reopened when closed."""

    def __init__(self, url: str, connect_timeout: float, read_timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WireError(f"not an http(s) URL: {url}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = ssl.create_default_context() if parts.scheme == "https" else None
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = parts.netloc.rsplit("@", 1)[-1]
        self.host_header = netloc.encode("idna" if not netloc.isascii() else "ascii")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._answer: Answer | None = None

    async def _connection(self) -> Answer:
        if self._answer is not None and not self._answer.closed:
            return self._answer
        loop = asyncio.get_running_loop()
        try:
            _, answer = await asyncio.wait_for(
                loop.create_connection(
                    lambda: Answer(self.read_timeout), self.host, self.port, ssl=self.tls,
                    server_hostname=self.host if self.tls else None,
                ),
                self.connect_timeout,
            )  # fmt: skip
        except TimeoutError:
            raise WireError(f"no connection to {self.host}:{self.port} in time") from None
        except OSError as exc:
            why = exc.strerror or str(exc) or type(exc).__name__
            raise WireError(f"cannot connect to {self.host}:{self.port}: {why}") from None
        self._answer = answer
        return answer

    async def post(
        self, body: bytes, headers: dict[str, str], on_body: BodyFn
    ) -> tuple[int, bytes]:
        """Send one POST; (status, the body of an answer other than 200)."""
        answer = await self._connection()
        assert answer.transport is not None
        answer.reset(on_body)
        done = answer.done = answer.loop.create_future()
        head = [b"POST " + self.path.encode() + b" HTTP/1.1", b"Host: " + self.host_header]
        head += [f"{k}: {v}".encode("latin-1") for k, v in headers.items()]
        head += [b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
        answer.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        answer.loop.call_later(self.read_timeout, answer._watch)
        try:
            status, error_body, keep = await done
        except BaseException:
            answer.transport.abort()  # cancelled or failed: the server sees the close
            self._answer = None
            raise
        if not keep:
            answer.transport.close()
            self._answer = None
        return status, error_body

    def close(self) -> None:
        if self._answer is not None and self._answer.transport is not None:
            self._answer.transport.abort()
        self._answer = None
