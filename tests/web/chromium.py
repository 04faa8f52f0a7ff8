"""Headless Chromium (Debian's `chromium` and `chromium-driver`) driven by Selenium, for the
browser test and bench/bench_web_first_paint.py.

The console draws on a canvas, so what it shows is read from what it is sent: a script run
before the page's own wraps `WebSocket`, keeps the text of every frame received (escape
sequences stripped) and notes, two animation frames after a watched text first arrives
(xterm has drawn it by then), `performance.now()`: milliseconds since navigation started.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

CAPTURE = r"""
window.__sockets = 0;
window.__text = "";
window.__seen = null;
const watched = WATCHED;
const Original = window.WebSocket;
const escapes = /\x1b\[[0-9;?<>=]*[ -\/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]/g;
window.WebSocket = function (url, protocols) {
  const socket = new Original(url, protocols);
  const decoder = new TextDecoder();
  window.__sockets += 1;
  socket.addEventListener("message", (event) => {
    if (typeof event.data === "string") return;
    window.__text += decoder.decode(new Uint8Array(event.data), {stream: true})
      .replace(escapes, "");
    if (window.__seen === null && watched && window.__text.includes(watched)) {
      window.__seen = -1;
      requestAnimationFrame(() => requestAnimationFrame(() => {
        window.__seen = performance.now();
      }));
    }
  });
  return socket;
};
window.WebSocket.prototype = Original.prototype;
"""


def chromium_missing() -> str | None:
    """Why Chromium cannot be driven here, or None."""
    for program in ("chromium", "chromedriver"):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the dev extra)"
    return None


class Chromium:
    """One headless browser window; `watched`: the text whose first paint is timed."""

    def __init__(self, *, watched: str = "", width: int = 1400, height: int = 860) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        for flag in (
            "--headless=new",
            "--no-sandbox",  # as root in a container, the sandbox cannot start
            "--disable-dev-shm-usage",
            "--disable-gpu",
            f"--window-size={width},{height}",
        ):
            options.add_argument(flag)
        options.binary_location = str(shutil.which("chromium"))
        service = Service(str(shutil.which("chromedriver")))
        self.driver: Any = webdriver.Chrome(service=service, options=options)
        script = CAPTURE.replace("WATCHED", repr(watched).replace("'", '"'))
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})

    def open(self, url: str) -> None:
        self.driver.get(url)

    def js(self, expression: str) -> Any:
        return self.driver.execute_script(f"return {expression}")

    @property
    def text(self) -> str:
        return str(self.js("window.__text") or "")

    def wait_text(self, needle: str, timeout: float = 30.0, *, after: int = 0) -> None:
        """Until `needle` was drawn (after the first `after` characters of the stream)."""
        deadline = time.monotonic() + timeout
        while needle not in self.text[after:]:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} never drawn; last: {self.text[-300:]!r}")
            time.sleep(0.1)

    def first_paint_ms(self, timeout: float = 60.0) -> float:
        """Milliseconds from navigation start to the watched text drawn."""
        deadline = time.monotonic() + timeout
        while (seen := self.js("window.__seen")) in (None, -1):
            if time.monotonic() > deadline:
                raise AssertionError(f"never drawn; last: {self.text[-300:]!r}")
            time.sleep(0.02)
        return float(seen)

    def press(self, *keys: str) -> None:
        """Keys as typed into the terminal (Selenium's `Keys` for the special ones)."""
        from selenium.webdriver.common.action_chains import ActionChains

        self._focus()
        ActionChains(self.driver).send_keys(*keys).perform()

    def press_ctrl(self, key: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        self._focus()
        chain = ActionChains(self.driver).key_down(Keys.CONTROL).send_keys(key)
        chain.key_up(Keys.CONTROL).perform()

    def _focus(self) -> None:
        # xterm reads keys from a hidden textarea; a page opened headless has no focus yet.
        self.js("document.querySelector('.xterm-helper-textarea').focus()")

    def screenshot(self, path: Path) -> None:
        self.driver.save_screenshot(str(path))

    def close(self) -> None:
        self.driver.quit()
