"""Glue that is neither a widget nor core: it watches widgets' messages and calls core
(e.g. the GPU-release guard). May import: core, screens it opens, textual.
"""
