"""Every request to `vllm-console web` is refused without the token or its cookie: pages,
static files, unknown paths and websocket upgrades. Wrong tokens are rate-limited and
logged (never the token); the token gives way to an HttpOnly, SameSite=Strict cookie."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.web.helpers import COOKIE, TOKEN, client_for, web_console
from vllm_console.config import Settings
from vllm_console.web.access import COOKIE_NAME, WRONG_LIMIT

PATHS = ("/", "/ws", "/static/js/textual.js", "/static/", "/download/x", "/nope", "/..%2f")


@pytest.mark.parametrize("path", PATHS)
async def test_nothing_without_the_token(settings: Settings, tmp_path: Path, path: str) -> None:
    log: list[str] = []
    client = await client_for(web_console(settings, tmp_path, log))
    try:
        response = await client.get(path, allow_redirects=False)
        assert response.status == 403
        assert "textual" not in await response.text()
        assert response.headers["Referrer-Policy"] == "no-referrer"
    finally:
        await client.close()


async def test_no_websocket_without_the_cookie(settings: Settings, tmp_path: Path) -> None:
    web = web_console(settings, tmp_path, [])
    client = await client_for(web)
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/ws")
        assert refused.value.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as wrong:
            await client.ws_connect("/ws", headers={"Cookie": f"{COOKIE_NAME}=not-it"})
        assert wrong.value.status == 403
        assert web.active is None  # no console was started
    finally:
        await client.close()


async def test_the_token_sets_the_cookie_and_leaves_the_address(
    settings: Settings, tmp_path: Path
) -> None:
    log: list[str] = []
    client = await client_for(web_console(settings, tmp_path, log))
    try:
        response = await client.get(f"/?token={TOKEN}&fontsize=14", allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"] == "/?fontsize=14"
        cookie = response.headers["Set-Cookie"]
        assert f"{COOKIE_NAME}={COOKIE}" in cookie and TOKEN not in cookie
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        page = await client.get("/?fontsize=14")  # the client keeps the cookie
        assert page.status == 200
        text = await page.text()
        assert "/static/js/textual.js" in text and TOKEN not in text
        assert "googleapis" not in text  # nothing from other sites
        assert (await client.get("/static/js/textual.js")).status == 200
        assert TOKEN not in "\n".join(log)
    finally:
        await client.close()


async def test_wrong_tokens_are_logged_then_refused_for_a_while(
    settings: Settings, tmp_path: Path
) -> None:
    log: list[str] = []
    client = await client_for(web_console(settings, tmp_path, log))
    try:
        for i in range(WRONG_LIMIT):
            response = await client.get(f"/?token=guess-{i}", allow_redirects=False)
            assert response.status == 403
        assert len(log) == WRONG_LIMIT
        assert "127.0.0.1" in log[-1] and "refused for a minute" in log[-1]
        assert not any("guess" in line for line in log)
        # limited: even the right token waits, and so does the cookie
        assert (await client.get(f"/?token={TOKEN}", allow_redirects=False)).status == 429
        cookie = {"Cookie": f"{COOKIE_NAME}={COOKIE}"}
        assert (await client.get("/", headers=cookie)).status == 429
        assert TOKEN not in "\n".join(log)
    finally:
        await client.close()


async def test_a_websocket_from_another_site_is_refused(settings: Settings, tmp_path: Path) -> None:
    log: list[str] = []
    web = web_console(settings, tmp_path, log)
    client = await client_for(web)
    try:
        headers = {"Cookie": f"{COOKIE_NAME}={COOKIE}", "Origin": "http://evil.example:8022"}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/ws", headers=headers)
        assert refused.value.status == 403
        assert web.active is None
        # The log says which names did not match: a proxy that rewrites Host is the usual cause.
        assert "its page came from http://evil.example:8022" in log[-1]
        assert "pass the Host header on" in log[-1]
    finally:
        await client.close()
