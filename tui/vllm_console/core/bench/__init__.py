"""Load tests of an endpoint: vLLM's own `vllm bench serve`, or the console's client with the
same metric definitions, swept over concurrency levels, checked against the server's counters
and kept in the run archive.

`stats` holds the metric definitions (those of vLLM's `benchmarks/serve.py`), `stream` the
reader of one streamed completion, `load` the console's own load runner, `vllm_bench` the
runner of the user's `vllm bench serve`, `counters` the server's `/metrics` counters read
around each step, `sweep` the whole run, `archive` its record on disk.

May import: httpx, prometheus_client, `core.endpoint` (the client, SSE, capped reads) and
`core.serve` (which vLLM, the run archive's folder rules). Never textual or rich.
"""
