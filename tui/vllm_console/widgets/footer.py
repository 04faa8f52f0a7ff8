"""Textual's footer, with its keys styled once instead of three times.

A `FooterKey` starts compact, and the footer (not compact) then binds it to non-compact: its
`-compact` class goes on and comes off again, and each change restyles the key. With the
main screen's dozen keys that cost 15-30 ms before the first frame on a 2-core box, and again
whenever the footer is rebuilt (each change of focus). Here each key gets the footer's value
before it is mounted, so nothing changes and nothing is restyled; the keys, their classes and
the look are Textual's.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer as TextualFooter

from vllm_console import compat

FooterKey = compat.footer_key_type()


class Footer(TextualFooter):
    """The keys that apply now (see the module docstring for what differs: only speed)."""

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            # Keys are bound to the footer's `compact`; the palette's key keeps its own.
            if isinstance(widget, FooterKey) and not widget.has_class("-command-palette"):
                widget.set_reactive(FooterKey.compact, self.compact)
            yield widget
