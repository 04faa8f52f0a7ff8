"""Textual's footer, with its keys styled once instead of three times.

A `FooterKey` starts compact, and the footer (not compact) then binds it to non-compact: its
`-compact` class goes on and comes off again, and each change restyles the key. With the
main screen's dozen keys that cost 15-30 ms before the first frame on a 2-core box, and again
whenever the footer is rebuilt (each change of focus). Here each key gets the footer's value
before it is mounted, so nothing changes and nothing is restyled; the keys, their classes and
the look are Textual's.

And it rebuilds once for any number of changes to the keys that arrive before it does:
Textual's footer queues a rebuild per change, and a fleet of servers starting together changes
the keys dozens of times a second, each rebuild restyling every key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.widgets import Footer as TextualFooter

from vllm_console import compat

FooterKey = compat.footer_key_type()


class Footer(TextualFooter):
    """The keys that apply now (see the module docstring for what differs: only speed)."""

    _rebuild_queued = False

    def call_after_refresh(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        if callback == self.recompose:
            if self._rebuild_queued:
                return True  # the queued one will see this change too
            self._rebuild_queued = True
        return super().call_after_refresh(callback, *args, **kwargs)

    async def recompose(self) -> None:
        self._rebuild_queued = False
        await super().recompose()

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            # Keys are bound to the footer's `compact`; the palette's key keeps its own.
            if isinstance(widget, FooterKey) and not widget.has_class("-command-palette"):
                widget.set_reactive(FooterKey.compact, self.compact)
            yield widget
