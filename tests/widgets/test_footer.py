"""The console's footer: Textual's keys, mounted already in their final (non-compact) state."""

from __future__ import annotations

from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer as TextualFooter

from vllm_console.compat import footer_key_type
from vllm_console.widgets.footer import Footer

FooterKey = footer_key_type()


class Host(App[None]):
    BINDINGS = [Binding("a", "bell", "Alpha"), Binding("b", "app.quit", "Beta")]

    def __init__(self, footer: type[TextualFooter]) -> None:
        super().__init__()
        self._footer = footer

    def compose(self) -> ComposeResult:
        yield self._footer()


async def _keys(
    footer: type[TextualFooter], monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, set[str]], list[str]]:
    """(each key's description -> its classes, the keys restyled by a class change)."""
    restyled: list[str] = []
    update = FooterKey.update_node_styles

    def counting(self: Any, animate: bool = True) -> None:
        restyled.append(self.description)
        update(self, animate)

    with monkeypatch.context() as patch:
        patch.setattr(FooterKey, "update_node_styles", counting)
        app = Host(footer)
        async with app.run_test(size=(80, 10)) as pilot:
            await pilot.pause()
            keys = {key.description: set(key.classes) for key in app.query(FooterKey)}
    return keys, restyled


async def test_keys_are_not_restyled_on_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    ours, restyled = await _keys(Footer, monkeypatch)
    theirs, their_restyled = await _keys(TextualFooter, monkeypatch)
    assert ours == theirs  # the same keys with the same classes
    assert "-compact" in ours["palette"] and "-compact" not in ours["Alpha"] | ours["Beta"]
    # Textual's keys put `-compact` on and take it off again, a restyle each; ours do not.
    assert sorted(their_restyled) == ["Alpha", "Alpha", "Beta", "Beta", "palette"]
    assert restyled == ["palette"]
