"""The two pages the web server sends: the console's, and the one a second browser gets.

The console's page is textual-serve's, trimmed: its client script and fonts come from the
package's own static folder (nothing from other sites, so it works offline and nothing
learns where the console runs), and the websocket address is the page's own, so the page
works behind a proxy that changes the host or port.
"""

from __future__ import annotations

from html import escape

CONSOLE_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="/static/css/xterm.css">
<script src="/static/js/textual.js"></script>
<style>
@font-face {{ font-family: "Roboto Mono"; font-style: normal;
  src: url("/static/fonts/RobotoMono-VariableFont_wght.ttf") format("truetype"); }}
@font-face {{ font-family: "Roboto Mono"; font-style: italic;
  src: url("/static/fonts/RobotoMono-Italic-VariableFont_wght.ttf") format("truetype"); }}
html, body {{ margin: 0; height: 100%; background: #0c181f; }}
.textual-terminal {{ width: 100vw; height: 100vh; opacity: 0; }}
body.-first-byte .textual-terminal {{ opacity: 1; }}
.note {{ position: absolute; inset: 0; display: flex; align-items: center;
  justify-content: center; color: rgba(255,255,255,0.9); z-index: 10;
  font: 16px "Roboto Mono", monospace; background: #0c181f; }}
body.-first-byte .starting, .ended {{ display: none; }}
body.-closed .ended {{ display: flex; }}
button {{ margin-left: 16px; padding: 8px 24px; background: #5e0ba7; color: white;
  border: none; font: inherit; cursor: pointer; }}
#start {{ display: none; }}
</style>
</head>
<body>
<div class="note starting">Starting the console…<button id="start">Start</button></div>
<div class="note ended">The console session ended.
<button type="button" onclick="location.reload()">Open it again</button></div>
<div id="terminal" class="textual-terminal" data-font-size="{font_size}"></div>
<script>
document.getElementById("terminal").dataset.sessionWebsocketUrl =
  (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
</script>
</body>
</html>
"""

BUSY_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{retry}">
<title>{title}: in use</title>
<style>body {{ background: #0c181f; color: #ddd; font: 16px monospace; padding: 3em; }}</style>
</head>
<body>
<p>Another browser session is driving this console; only one may at a time.</p>
<p>Close that tab (its servers keep running) and this page takes over within seconds.</p>
</body>
</html>
"""

TITLE = "vLLM console"


def console_page(font_size: int) -> str:
    return CONSOLE_PAGE.format(title=escape(TITLE), font_size=font_size)


def busy_page(retry_seconds: int) -> str:
    return BUSY_PAGE.format(title=escape(TITLE), retry=retry_seconds)
