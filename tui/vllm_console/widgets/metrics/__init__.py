"""The metrics panel: a vLLM server's /metrics while the tab is shown.

May import: core, textual, sibling widget packages, `vllm_console.compat`.
"""
