"""The chat pane: endpoint bar, messages, prompt, parameters and their state.

May import: core, textual, sibling widget packages, `vllm_console.compat`.
"""
