"""The server pane: one server's status line, phases, findings and live log.

May import: core, textual, sibling widget packages, `vllm_console.compat`.
"""
