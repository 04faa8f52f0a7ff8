"""The GPU strip: one gauge block per GPU, sampled by a thread worker.

May import: core, textual, sibling widget packages, `vllm_console.compat`.
"""
