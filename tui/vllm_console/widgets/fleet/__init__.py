"""The fleet: every server of the console at once. A table with one row per member (its
place, phase, load and health, read from each member's /metrics) over the selected member's
pane: a `ServerPane` per local member, a short description per remote one.

May import: core, textual, rich, sibling widget packages (`server`), `vllm_console.compat`.
"""
