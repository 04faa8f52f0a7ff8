"""Several servers at once, local and remote: what one member of a fleet is (`model`), the
fleet file (`file`), starting and watching a whole fleet headless (`up`), and the servers
any console or `up` started on this machine (`registry`, for `ps` and `stop`).

May import: the standard library, PyYAML, httpx, `vllm_console.config`, and the core
packages below it: `serve` (a local member is a `ServerSession`), `gpu` (who holds what),
`endpoint` (a member's /health, /version, /v1/models and /metrics). Nothing imports it but
the UI and the commands.
"""
