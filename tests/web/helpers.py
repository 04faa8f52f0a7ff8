"""A `WebConsole` on a test server: an environment for its consoles kept in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from vllm_console.config import Settings
from vllm_console.web.access import cookie_value
from vllm_console.web.server import WebConsole

TOKEN = "test-token-0123456789abcdef"
COOKIE = cookie_value(TOKEN)
TUI = Path(__file__).resolve().parents[2] / "tui"


def console_env(tmp_path: Path) -> dict[str, str]:
    """The consoles' environment: a home of their own, no GPU library, this checkout."""
    (tmp_path / "home").mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_"))}
    path = os.pathsep.join(p for p in (str(TUI), os.environ.get("PYTHONPATH", "")) if p)
    return {**base, "HOME": str(tmp_path / "home"), "PYTHONPATH": path}


def web_console(settings: Settings, tmp_path: Path, log: list[str]) -> WebConsole:
    return WebConsole(settings, TOKEN, console_env(tmp_path), log=log.append)


async def client_for(server: WebConsole) -> TestClient[web.Request, web.Application]:
    client = TestClient(TestServer(server.make_app()))
    await client.start_server()
    return client
