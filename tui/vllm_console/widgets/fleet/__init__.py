"""The fleet: every server of the console at once. A table with one row per member (its
place, phase, load and health, read from each member's /metrics) over the selected member's
pane: a `ServerPane` per local member, a `RemotePane` (`remote`) per remote one, which probes
it and reports its state for the table.

May import: core, textual, rich, sibling widget packages (`server`), `vllm_console.compat`.
"""
