"""One GET of a server that may lie, bounded in size and in time, and httpx's failures in words.

A server's bytes are untrusted. A body may never end, its content-length may lie, it may drip
a byte a second (httpx's read timeout applies between chunks, so a drip never trips it), or
compress a gigabyte of zeros into a megabyte. `fetch` asks for an uncompressed answer, refuses
a compressed one, reads at most `limit` bytes, and gives the whole exchange (connect, headers,
body) one deadline. Whatever happens is an `Answer`, never an exception; only cancellation
goes through. The probe (`client`, `core.fleet.probe`) and `/metrics` (`metrics`) read with it.

`describe_error` turns an httpx failure into one line a person can act on.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["MAX_BODY_BYTES", "MAX_ERROR_BYTES", "Answer", "describe_error", "error_body", "fetch"]

CONNECT_TIMEOUT_S = 5.0
# /health, /version and a model list are a few KB; vLLM's /metrics ~60 KB (more with many
# engines or adapters). Past this an answer is not what it claims to be.
MAX_BODY_BYTES = 1 << 20
_PLAIN = ("", "identity")
# an error answer (`{"error": {"message": ...}}`) is a few hundred bytes; only its start is read
MAX_ERROR_BYTES = 64 * 1024


def describe_error(exc: BaseException, read_timeout: float | None = None) -> str:
    """One line a person can act on, for an httpx failure."""
    if isinstance(exc, httpx.ConnectTimeout):
        return f"no answer within {CONNECT_TIMEOUT_S:g} s (connect timeout)"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({_connect_reason(exc)})"
    if isinstance(exc, httpx.ReadTimeout):
        waited = f" for {read_timeout:g} s" if read_timeout else ""
        return f"the server sent nothing{waited} (read timeout)"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return "the server closed the connection mid-answer"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _connect_reason(exc: BaseException) -> str:
    """The OS's reason under httpx's and anyio's wrappers ("All connection attempts failed")."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return f"host name not resolved: {seen.strerror}"
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno).lower()
        seen = seen.__cause__ or seen.__context__
    return str(exc).split("] ", 1)[-1].lower() or "connection failed"


@dataclass(frozen=True)
class Answer:
    """What one GET got. `status` None: no answer came; `error` set: `body` is not to be used
    (none came, or it broke off, or it was over the limit)."""

    status: int | None = None
    body: bytes = b""
    error: str | None = None

    def json(self) -> Any:
        """The body as JSON; None when it is not JSON (or nests too deep to read)."""
        if self.error is not None:
            return None
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return None

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _Refused(Exception):
    """An answer read no further: too big, or compressed though asked not to be."""


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    api_key: str | None = None,
    limit: int = MAX_BODY_BYTES,
    timeout: float = CONNECT_TIMEOUT_S,
) -> Answer:
    """GET `url`: at most `limit` bytes of body, all within `timeout` seconds."""
    headers = {"Accept-Encoding": "identity"}
    if api_key:
        if not (api_key.isascii() and api_key.isprintable()):
            return Answer(error="the API key holds characters no HTTP header can carry")
        headers["Authorization"] = f"Bearer {api_key}"
    status: int | None = None
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("GET", url, headers=headers, timeout=timeout) as response:
                status = response.status_code
                body = await _read(response, limit)
    except (TimeoutError, httpx.TimeoutException):
        if status is None:
            return Answer(error=f"no answer within {timeout:g} s")
        return Answer(status, error=f"the answer did not end within {timeout:g} s")
    except _Refused as exc:
        return Answer(status, error=str(exc))
    except httpx.RemoteProtocolError as exc:
        return Answer(status, error=_broken(exc))
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return Answer(status, error=describe_error(exc))
    except UnicodeError as exc:  # a host name that IDNA refuses
        return Answer(status, error=f"not a usable address ({str(exc)[:120]})")
    return Answer(status, body)


async def _read(response: httpx.Response, limit: int) -> bytes:
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in _PLAIN:
        raise _Refused("the answer came compressed, though it was asked for plain")
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and (len(declared) > 12 or int(declared) > limit):
        raise _Refused(f"the answer is over {_size(limit)} (content-length)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > limit:
            raise _Refused(f"the answer is over {_size(limit)}")
        chunks.append(chunk)
    return b"".join(chunks)


async def error_body(response: httpx.Response, limit: int = MAX_ERROR_BYTES) -> bytes:
    """The start of an error answer (not 200) of a streamed request, for its message: at most
    `limit` bytes as sent, nothing of a compressed one (a small one can inflate to gigabytes).
    The rest is left unread; the connection closes with the stream."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in _PLAIN:
        return b""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk[: limit - size])
        size += len(chunks[-1])
        if size >= limit:
            break
    return b"".join(chunks)


def _broken(exc: httpx.RemoteProtocolError) -> str:
    message = str(exc)
    if not message or "disconnected" in message or "peer closed" in message:
        return "the server closed the connection mid-answer"
    return f"not an HTTP answer ({message[:120]})"


def _size(limit: int) -> str:
    if limit >= 1 << 20:
        return f"{limit / (1 << 20):g} MiB"
    return f"{limit / 1024:g} KiB" if limit >= 1024 else f"{limit} bytes"
