"""The fleet's widgets: a remote member's pane (`remote`), which probes it and reports its
state for the fleet table.

May import: core, textual, sibling widget packages, `vllm_console.compat`.
"""
