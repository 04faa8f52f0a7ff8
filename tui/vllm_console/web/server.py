"""`vllm-console web`: the console served to a browser, behind a token, one session at a time.

aiohttp serves textual-serve's browser client (its static folder) and our page; each
websocket gets a console process (`relay`). The middleware runs before any route, static
files and unknown paths included: without the cookie (or the token, which sets it and is
then dropped from the address by a redirect) the answer is 403, and a websocket upgrade is
refused before it happens. aiohttp's access log is off: it would write the token's URL.

Stopping (Ctrl-C, SIGTERM) stops the open session's console as quitting does, then the
servers that closed tabs left running, unless `keep_servers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

from vllm_console.config import Settings
from vllm_console.core.text import visible
from vllm_console.web.access import COOKIE_NAME, TOKEN_PARAM, Gate, Verdict, origin_matches
from vllm_console.web.page import busy_page, console_page
from vllm_console.web.relay import (
    ENV_FILE_ENV,
    KEEP_ENV,
    LEFT_FILE_ENV,
    Relay,
    cells_from_query,
    console_environment,
    parse_envelope,
)

BUSY_RETRY = 2  # seconds between a waiting second browser's tries
MAX_MESSAGE = 1 << 20  # bytes in one websocket message from the browser

SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "frame-ancestors 'none'",
}


@dataclass(frozen=True)
class WebOptions:
    host: str = "127.0.0.1"
    port: int = 8022
    keep_servers: bool = False


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def public_url(host: str, port: int, token: str) -> str:
    """The address to open; a wildcard bind is shown under the machine's name."""
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/?{urlencode({TOKEN_PARAM: token})}"


def stderr_log(line: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(visible(f"{stamp} vllm-console web: {line}"), file=sys.stderr, flush=True)


class WebConsole:
    """The server's state: the gate, the one open session, what closed tabs left running."""

    def __init__(
        self,
        settings: Settings,
        token: str,
        console_env: Mapping[str, str],
        *,
        keep_servers: bool = False,
        left_file: Path | None = None,
        log: Callable[[str], None] = stderr_log,
    ) -> None:
        self.settings = settings
        self.gate = Gate(token)
        self.keep_servers = keep_servers
        self.left_file = left_file
        self.log = log
        self.active: Relay | None = None
        self._console_env = dict(console_env)
        self._static = static_folder()

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=1 << 16)
        app.router.add_get("/", self._index)
        app.router.add_get("/ws", self._websocket)
        app.router.add_static("/static", self._static, follow_symlinks=False)
        return app

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        peer = request.remote or "unknown"
        wrong_before = self.gate.wrong_count(peer)
        verdict = self.gate.check(peer, request.query, request.cookies)
        if verdict is Verdict.LIMITED:
            return _refusal(429, "Too many wrong tokens from your address: wait a minute.")
        if verdict is Verdict.REFUSE:
            if (wrong := self.gate.wrong_count(peer)) > wrong_before:
                limited = " (refused for a minute)" if self.gate.limited(peer) else ""
                self.log(f"wrong token from {peer}: {wrong} in the last minute{limited}")
            return _refusal(403, "Forbidden: open the address vllm-console web printed.")
        if verdict is Verdict.OPEN and request.path != "/ws":
            # The token has done its work: the cookie takes over, the address drops it.
            rest = [(k, v) for k, v in request.query.items() if k != TOKEN_PARAM]
            target = request.path + (f"?{urlencode(rest)}" if rest else "")
            moved = web.Response(status=303, headers={"Location": target, **SECURITY_HEADERS})
            moved.set_cookie(COOKIE_NAME, self.gate.cookie, httponly=True, samesite="Strict")
            return moved
        response = await handler(request)
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    async def _index(self, request: web.Request) -> web.Response:
        if self.active is not None:
            return web.Response(status=409, text=busy_page(BUSY_RETRY), content_type="text/html")
        size = cells_from_query(request.query.get("fontsize"), 16)
        return web.Response(text=console_page(min(size, 64)), content_type="text/html")

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not origin_matches(request.headers.get("Origin"), request.host):
            origin, host = request.headers.get("Origin", ""), request.host
            self.log(
                visible(
                    f"refused a websocket from another site ({request.remote}): its page came "
                    f"from {origin[:200]}, this server was asked for as {host[:200]} (behind a "
                    "reverse proxy, pass the Host header on)"
                )
            )
            return _refusal(403, "Forbidden: this page belongs to another site.")
        if self.active is not None:
            return _refusal(409, "Another browser session is driving this console.")
        ws = web.WebSocketResponse(heartbeat=15, max_msg_size=MAX_MESSAGE)
        width = cells_from_query(request.query.get("width"), 80)
        height = cells_from_query(request.query.get("height"), 24)
        env = console_environment(self._console_env, width, height)
        relay = self.active = Relay(env, ws.send_bytes, ws.send_str, ws.close)
        try:
            await ws.prepare(request)
            await relay.start()
            self.log(f"browser session opened from {request.remote}")
            async for message in ws:
                if message.type is WSMsgType.TEXT and (envelope := parse_envelope(message.data)):
                    await relay.handle(envelope)
            await relay.quit()  # the tab closed: the console leaves its servers running
        finally:
            with contextlib.suppress(Exception):
                await relay.wait()
            if self.active is relay:
                self.active = None
            self._said_goodbye(relay)
        return ws

    def _said_goodbye(self, relay: Relay) -> None:
        self.log("browser session closed")
        if relay.errors and relay.returncode not in (0, None):
            self.log(f"the console failed (exit {relay.returncode}); it said:")
            for line in relay.errors.decode("utf-8", "replace").splitlines()[-40:]:
                self.log(f"  {line}")

    async def stop(self) -> None:
        """Stop the open session's console, then (unless kept) what closed tabs left."""
        relay = self.active
        if relay is not None:
            self.log("stopping the console…")
            await relay.terminate()
        if not self.keep_servers:
            await self._stop_left()

    async def _stop_left(self) -> None:
        from vllm_console.core.serve import attach
        from vllm_console.core.serve.runs import LEFT_RUNNING, RunArchive

        if self.left_file is None:
            return
        try:
            ids = set(self.left_file.read_text(encoding="utf-8").split())
        except OSError:
            return
        runs = await asyncio.to_thread(RunArchive(self.settings.runs_dir).leftovers)
        for run in runs:
            if run.id in ids and run.status == LEFT_RUNNING:
                self.log(f"stopping {run.server_name} (run {run.id}), left by a closed tab")
                await attach.stop(self.settings, run.id)


def _refusal(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=SECURITY_HEADERS)


def static_folder() -> Path:
    """textual-serve's browser client: its script, stylesheet and fonts."""
    import textual_serve

    return Path(textual_serve.__file__).parent / "static"


async def serve(web_console: WebConsole, options: WebOptions, url: str) -> int:
    """Serve until SIGINT, SIGTERM or SIGHUP; then stop as `WebConsole.stop` says."""
    runner = web.AppRunner(web_console.make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, options.host, options.port).start()
    except OSError as exc:
        await runner.cleanup()
        print(
            visible(f"vllm-console web: cannot listen on {options.host}:{options.port}: {exc}"),
            file=sys.stderr,
        )
        return 2
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stopping.set)
    print(f"vllm-console web: open {url}", flush=True)  # the one place the token is shown
    print("Press Ctrl-C to stop (and stop the servers it started).", flush=True)
    await stopping.wait()
    try:
        await web_console.stop()
    finally:
        await runner.cleanup()
    return 0


def cmd_web(
    settings: Settings,
    options: WebOptions,
    *,
    overrides: Mapping[str, str],
    env_file: Path | None,
) -> int:
    """Run `vllm-console web`; `overrides`: the settings its command line gave, passed on
    to each console through the environment (never argv, which every local user sees)."""
    from vllm_console.web.access import TOKEN_ENV, TokenError, check_token, new_token

    given = os.environ.pop(TOKEN_ENV, None)  # no child (console, vLLM) inherits it
    try:
        token = check_token(given) if given is not None else new_token()
    except TokenError as exc:
        print(f"vllm-console web: {exc}", file=sys.stderr)
        return 2
    if not is_loopback(options.host):
        print(
            visible(
                f"vllm-console web: WARNING: listening on {options.host}, beyond this machine. "
                "Whoever has the address with its token can start processes here, and the "
                "connection is not encrypted: prefer an SSH tunnel or an HTTPS proxy."
            ),
            file=sys.stderr,
        )
    private = Path(tempfile.mkdtemp(prefix="vllm-console-web-"))
    left_file = private / "left-running"
    env = {**os.environ, **overrides, LEFT_FILE_ENV: str(left_file)}
    if env_file is not None:
        env[ENV_FILE_ENV] = str(env_file.resolve())
    if options.keep_servers:
        env[KEEP_ENV] = "1"
    web_console = WebConsole(
        settings, token, env, keep_servers=options.keep_servers, left_file=left_file
    )
    url = public_url(options.host, options.port, token)
    try:
        return asyncio.run(serve(web_console, options, url))
    finally:
        shutil.rmtree(private, ignore_errors=True)
