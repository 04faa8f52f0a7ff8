"""The console in a browser: `vllm-console web`, guarded by a token, one session at a time.

A page that can launch processes is remote code execution for whoever reaches its port, so
every request passes `access` first. `server` is the aiohttp server (textual-serve's browser
client, our own relay to the console process), `relay` speaks textual's web-driver protocol
with one console process per browser session, `console` is that process: the App, with a
closed tab meaning "leave the servers running" and the server's stop meaning quit.

May import: vllm_console.config, vllm_console.core, and (console only) vllm_console.app and
vllm_console.controllers; server, access and relay never import textual.
"""
