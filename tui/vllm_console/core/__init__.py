"""Everything that is not UI: a library a script could use without a screen.

Packages, by what they own (each one's own docstring says what it may import):

- `catalog`: every model on disk (HF cache, model folders), the index, resolve, readers.
- `hub`: downloads from the hub or a mirror.
- `serve`: a launch's spec, which vLLM, the process, the session, diagnosis, runs, /proc.
- `gpu`: NVML, who holds memory, will it fit.
- `endpoint`: an OpenAI-compatible server from outside: client, SSE, /metrics.
- `fleet`: several servers, local and remote: the fleet file, `up`, `ps`, the registry.

Two modules every package uses: `files` (untrusted files read without blocking, the
console's own files written privately) and `text` (control characters made visible).

May import: the standard library, httpx, PyYAML, huggingface_hub, prometheus_client, pynvml,
`vllm_console.config` and `vllm_console.compat`. Never textual or rich (an import-linter
contract and a test say so), nor anything of the UI.
"""
