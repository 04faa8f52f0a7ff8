"""The GPUs: NVML sampling (`nvml`) and its readings (`samples`), who holds their memory
(`owners`), and whether a launch fits: the model's side (`fit`, its KV cache layer by
layer in `kvcache`) against the GPUs
(`verdict`), and the memory the fleet's other servers hold against a launch (`overlap`).

May import: pynvml (lazily), `core.serve` (the process table, a launch spec),
`core.catalog` (a model's entry). Never `endpoint`.
"""
