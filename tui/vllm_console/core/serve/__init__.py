"""Serving one vLLM: the launch spec (`spec`), which vLLM runs (`install`), the child process
(`process`), its supervision (`supervisor`), one whole server session (`session`), reading its
log (`diagnose`), the run archive (`runs`), the process table (`proctable`), the port a new
server takes (`ports`), servers left by earlier runs (`leftovers`) and following or stopping
one of them (`attach`).

May import: the standard library, httpx, `vllm_console.config`, `core.catalog` (resolve).
Never `gpu` or `endpoint`: the GPU strip and the chat build on a server, not the reverse.
"""
