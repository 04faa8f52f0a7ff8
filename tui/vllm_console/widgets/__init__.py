"""Widgets of the console, a package per pane (`models`, `server`, `chat`, `gpu`, `metrics`),
each widget's CSS in a `.tcss` beside it; plus what the main screen shares: the footer, the
header line, the side tabs and the worker-error mixin. Each calls core from workers and
reports up by messages; no widget reaches into another.

May import: core, textual, rich, `vllm_console.compat`. Never screens, controllers or the App.
"""
