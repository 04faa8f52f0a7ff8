"""The GPUs: NVML sampling (`nvml`), who holds their memory (`owners`) and whether a launch
fits (`fit`).

May import: pynvml (lazily), `core.serve` (the process table, a launch spec),
`core.catalog` (a model's entry). Never `endpoint`.
"""
