"""The model list: the browser (table, filter, sort), its rows, the details pane and the
palette's model commands.

May import: core, textual, sibling widget packages, `vllm_console.compat`.
"""
