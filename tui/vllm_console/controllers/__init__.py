"""Glue that is neither a widget nor core: the server's launch/stop/quit flow
(`server`) and the GPU-release guard (`gpu_guard`). The App passes them widgets' messages.

May import: core, widgets, textual. Never screens (the App hands in a dialog maker) nor the
App itself (type annotations aside).
"""
