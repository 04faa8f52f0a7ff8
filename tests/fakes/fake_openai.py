"""A stand-in OpenAI-compatible server with fault modes, for the endpoint client's tests.

A real HTTP/1.1 server on 127.0.0.1 (an ephemeral port, one thread per connection) that
streams chat answers as uvicorn does: one chunked-encoding chunk per SSE event, each written
to the socket at once. It serves `/health`, `/version` (unless `vllm=False`), `/v1/models`
(entries with `max_model_len` and `owned_by`) and `/v1/chat/completions`; `api_key` guards
`/v1` only, as vLLM's `--api-key` does. An unknown model gets vLLM's 404.

`mode` (settable between requests) picks how a stream goes:
  normal       role chunk, `tokens` content chunks, finish reason, usage chunk if asked, [DONE]
  slow_first   waits `first_token_delay` s after the headers before the first chunk
  keepalive    `: keep-alive` comments before and between the chunks
  error_mid    3 chunks, then `data: {"error": {...}}`, then [DONE]
  malformed    the chunks interleaved with lines a client must skip (3 of them)
  drop         3 chunks, then the connection is closed without ending the chunked body
  no_done      the chunks and a finish reason, then a clean end without [DONE]
  crlf         every line ended by CRLF
  reasoning    2 `reasoning_content` chunks before the content
  endless      a chunk every `token_delay` s until the client hangs up (see `hangups`)
  buffered     as a buffering proxy passes it on: after `first_token_delay` s, the whole
               answer in one write
`max_tokens` in a request overrides `tokens` (finish reason `length` then).
Every chat request body is kept in `requests`; `hangups` is set when a client closes a stream
before its end, as a real server notices (a write to the socket fails).

Run as a script (`python fake_openai.py [--port 0] [--mode M] [--tokens N]`) it prints its
port on the first line of stdout and serves until killed: the SSE benchmark uses that.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = (
    "normal",
    "slow_first",
    "keepalive",
    "error_mid",
    "malformed",
    "drop",
    "no_done",
    "crlf",
    "reasoning",
    "endless",
    "buffered",
)
GARBAGE = (b"data: {not json\n\n", b"this line has no colon\n\n", b"data: [1, 2]\n\n")


def word(i: int) -> str:
    """The i-th content chunk of every answer: tests can rebuild the expected text."""
    return f"w{i} "


class _Hangup(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    """Serves the fake's routes (public: the chat-pane benchmark times its writes)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as uvicorn: each event leaves at once
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _allowed(self) -> bool:
        key = self.server.fake.api_key
        if (
            key
            and self.path.startswith("/v1")
            and self.headers.get("Authorization") != (f"Bearer {key}")
        ):
            self._json(401, {"error": {"message": "Unauthorized", "code": 401}})
            return False
        return True

    def do_GET(self) -> None:
        fake = self.server.fake
        if not self._allowed():
            return
        if self.path in ("/health", "/version") and not fake.vllm:
            self._json(404, {"detail": "Not Found"})
        elif self.path == "/health":
            self._json(200, {})
        elif self.path == "/version":
            self._json(200, {"version": "0.32.0"})
        elif self.path == "/v1/models":
            owner = "vllm" if fake.vllm else "someone"
            cards: list[dict[str, object]] = [
                {"id": m, "object": "model", "owned_by": owner} for m in fake.models
            ]
            if fake.vllm:
                cards = [{**c, "max_model_len": fake.max_model_len} for c in cards]
            self._json(200, {"object": "list", "data": cards})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("content-length") or 0)
        req: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}")
        if not self._allowed():
            return
        if self.path != "/v1/chat/completions":
            return self._json(404, {"detail": "Not Found"})
        with fake.lock:
            fake.requests.append(req)
        model = req.get("model")
        if model not in fake.models:
            error = {"message": f"The model `{model}` does not exist.", "type": "NotFoundError"}
            return self._json(404, {"error": {**error, "param": "model", "code": 404}})
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            if self._stream(fake, req, fake.mode):
                self.wfile.write(b"0\r\n\r\n")
        except (_Hangup, OSError):
            fake.hangups.set()
            self.close_connection = True

    held: list[bytes] | None = None  # what a buffered answer has written so far

    def _send(self, data: bytes, *, crlf: bool = False) -> None:
        if crlf:
            data = data.replace(b"\n", b"\r\n")
        framed = b"%x\r\n%s\r\n" % (len(data), data)
        if self.held is not None:
            self.held.append(framed)
            return
        try:
            self.wfile.write(framed)
        except OSError as exc:
            raise _Hangup from exc

    def _stream(self, fake: FakeOpenAI, req: dict[str, Any], mode: str) -> bool:
        """Write one answer's events; False when the body must be left unfinished."""
        if mode != "buffered":
            return self._events(fake, req, mode)
        time.sleep(fake.first_token_delay)
        self.held = []
        try:
            finished = self._events(fake, req, mode)
            data = b"".join(self.held)
        finally:
            self.held = None
        try:
            self.wfile.write(data)
        except OSError as exc:
            raise _Hangup from exc
        return finished

    def _events(self, fake: FakeOpenAI, req: dict[str, Any], mode: str) -> bool:
        crlf = mode == "crlf"
        n = req.get("max_tokens") or fake.tokens
        finish = "length" if req.get("max_tokens") else "stop"
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": req["model"]}

        def chunk(delta: dict[str, str], reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
            return b"data: %s\n\n" % json.dumps({**base, "choices": [choice]}).encode()

        if mode == "slow_first":
            time.sleep(fake.first_token_delay)
        if mode == "keepalive":
            self._send(b": keep-alive\n\n")
        self._send(chunk({"role": "assistant", "content": ""}), crlf=crlf)
        if mode == "reasoning":
            for i in range(2):
                self._send(chunk({"reasoning_content": f"think{i} "}))
        i = 0
        while i < n or mode == "endless":
            if mode == "error_mid" and i == 3:
                error = {"message": "EngineCore died", "type": "InternalServerError", "code": 500}
                self._send(b"data: %s\n\n" % json.dumps({"error": error}).encode())
                self._send(b"data: [DONE]\n\n")
                return True
            if mode == "drop" and i == 3:
                self.connection.shutdown(socket.SHUT_RDWR)  # mid-body: an incomplete chunked read
                self.close_connection = True
                return False
            if mode == "malformed" and i < len(GARBAGE):
                self._send(GARBAGE[i])
            last = i == n - 1 and mode != "endless"
            self._send(chunk({"content": word(i)}, finish if last else None), crlf=crlf)
            if mode == "keepalive":
                self._send(b": keep-alive\n\n")
            if fake.token_delay:
                time.sleep(fake.token_delay)
            i += 1
        if (req.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": 7 + n}
            usage_chunk = {**base, "choices": [], "usage": usage}
            self._send(b"data: %s\n\n" % json.dumps(usage_chunk).encode(), crlf=crlf)
        if mode != "no_done":
            self._send(b"data: [DONE]\n\n", crlf=crlf)
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenAI

    def server_bind(self) -> None:  # skips HTTPServer's getfqdn(), which may wait on DNS
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client hanging up is no news
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class FakeOpenAI:
    """The server and its knobs; use as a context manager, or start() and stop()."""

    def __init__(
        self,
        *,
        models: Sequence[str] = ("fake-model",),
        api_key: str | None = None,
        vllm: bool = True,
        mode: str = "normal",
        tokens: int = 12,
        port: int = 0,
    ) -> None:
        self.models = list(models)
        self.api_key = api_key
        self.vllm = vllm
        self.mode = mode
        self.tokens = tokens
        self.max_model_len = 4096
        self.first_token_delay = 1.0
        self.token_delay = 0.0
        self.requests: list[dict[str, Any]] = []
        self.hangups = threading.Event()
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=MODES, default="normal")
    parser.add_argument("--tokens", type=int, default=12)
    parser.add_argument("--model", action="append", dest="models")
    args = parser.parse_args(argv)
    fake = FakeOpenAI(
        models=args.models or ["fake-model"], mode=args.mode, tokens=args.tokens, port=args.port
    )
    print(fake.port, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        fake._server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
