"""Hostile requests on a real socket: any path, method, query, cookie and header a scanner
might send, raw; without the token none gets anything but a refusal, and the server lives."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.web.helpers import TOKEN, console_env
from vllm_console.config import Settings
from vllm_console.web.access import COOKIE_NAME
from vllm_console.web.server import WebConsole

_safe = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40)
_method = st.sampled_from(["GET", "POST", "HEAD", "PUT", "OPTIONS", "TRACE", "G\x00T", "get"])
_path = st.one_of(
    st.sampled_from(["/", "/ws", "/static/js/textual.js", "/static/../../etc/passwd", "//"]),
    st.builds(lambda p: "/" + p, _safe),
)
_query = st.one_of(
    st.just(""),
    st.builds(lambda v: f"?token={v}", _safe.filter(lambda v: v != TOKEN)),
    st.builds(lambda v: "?" + v, _safe),
)
_headers = st.lists(
    st.sampled_from(
        [
            f"Cookie: {COOKIE_NAME}=wrong",
            f"Cookie: {COOKIE_NAME}={TOKEN}",  # the token as the cookie is not the cookie
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Origin: http://evil.example",
            "X-Forwarded-For: 127.0.0.1",
            "Content-Length: 5",
            "Transfer-Encoding: chunked",
            "Cookie: " + "a=b; " * 200,
        ]
    ),
    max_size=4,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, WebConsole]]:
    tmp = tmp_path_factory.mktemp("hostile")
    console = WebConsole(Settings(home=tmp), TOKEN, console_env(tmp), log=lambda line: None)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(console.make_app(), access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield port, console
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def ask(port: int, raw: bytes) -> bytes:
    """What the server answers to `raw` before it closes, or within a second (a request
    whose body never comes is left waiting: no answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(raw)
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(_method, _path, _query, _headers, st.binary(max_size=64))
def test_nothing_gets_through(
    server: tuple[int, WebConsole],
    method: str,
    path: str,
    query: str,
    headers: list[str],
    body: bytes,
) -> None:
    port, console = server
    console.gate.wrong.clear()  # the rate limit is tested elsewhere: here, every refusal
    head = f"{method} {path}{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    head += "".join(h + "\r\n" for h in headers) + "\r\n"
    answer = ask(port, head.encode("latin-1") + body)
    if not answer:  # closed unanswered (a request too broken to parse): also a refusal
        return
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.split(b" ")[1:2] in ([b"403"], [b"400"], [b"429"], [b"405"]), answer[:300]
    if not status_line.startswith(b"HTTP/1.0 400"):  # a 400 quotes the request line back
        assert b"textual" not in answer
    assert TOKEN.encode() not in answer
    assert console.active is None
    after = ask(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert after.startswith(b"HTTP/1.1 403"), after[:200]
