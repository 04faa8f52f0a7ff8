"""A stand-in server that answers with exactly the bytes a test gives it, however wrong.

The other stand-ins speak HTTP correctly; this one is for readers of untrusted answers. Each
path gets a `Reply`: raw bytes (status line, headers and body as written, so a content-length
may lie, a chunk size may be garbage, a body may never end): the head at once, then the body
in pieces of `piece` bytes `drip` seconds apart, after which the connection stays open `hold`
seconds (a body shorter than its content-length then neither ends nor fails) and is closed.
A path without a reply gets a plain 404. One thread per connection on 127.0.0.1;
`requests` lists the paths asked.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    raw: bytes
    piece: int = 1 << 16
    drip: float = 0.0
    hold: float = 0.0


def response(
    body: bytes | str,
    status: str = "200 OK",
    *,
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),),
    length: int | str | None = None,
) -> bytes:
    """An HTTP/1.1 answer: `length` is the content-length sent (the true one when None;
    "" sends none, so the body runs to the connection's close)."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers), "connection: close"]
    declared = len(data) if length is None else length
    if declared != "":
        lines.append(f"content-length: {declared}")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("latin-1", "replace") + data


NOT_FOUND = Reply(response(b'{"detail": "Not Found"}', "404 Not Found"))


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(5.0)
        with contextlib.suppress(OSError):
            path = self._path(sock)
            hostile = self.server.hostile
            with hostile.lock:
                hostile.requests.append(path)
                reply = hostile.replies.get(path, NOT_FOUND)
            end = reply.raw.find(b"\r\n\r\n") + 4 if b"\r\n\r\n" in reply.raw else 0
            sock.sendall(reply.raw[:end])
            for start in range(end, len(reply.raw), reply.piece):
                sock.sendall(reply.raw[start : start + reply.piece])
                if reply.drip:
                    time.sleep(reply.drip)
            if reply.hold:
                time.sleep(reply.hold)

    @staticmethod
    def _path(sock: socket.socket) -> str:
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            got = sock.recv(4096)
            if not got:
                break
            data += got
        parts = data.split(b"\r\n", 1)[0].split(b" ")
        return parts[1].decode("latin-1") if len(parts) > 1 else ""


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    hostile: HostileServer


class HostileServer:
    """The server and its replies (path -> `Reply`, settable between requests)."""

    def __init__(self, port: int = 0) -> None:
        self.replies: dict[str, Reply] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.hostile = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, replies: dict[str, Reply]) -> None:
        with self.lock:
            self.replies = dict(replies)

    def start(self) -> HostileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
