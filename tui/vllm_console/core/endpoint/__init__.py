"""An OpenAI-compatible server seen from outside: the client and its probe (`client`), the
SSE stream of a chat (`sse`), and vLLM's Prometheus `/metrics` (`metrics`).

May import: httpx, prometheus_client. Never `catalog`, `serve`, `gpu` or `hub`: an endpoint
may be anyone's.
"""
