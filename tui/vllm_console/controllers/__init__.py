"""Glue that is neither a widget nor core: the fleet's launch/stop/relaunch flow (`server`),
its processes for the GPU strip and the launch dialog (`fleet`), quitting and what earlier
consoles left running (`leaving`), and the GPU-release guard (`gpu_guard`). The App passes
them widgets' messages.

May import: core, widgets, textual. Never screens (the App hands in a dialog maker) nor the
App itself (type annotations aside).
"""
