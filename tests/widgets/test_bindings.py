"""Every key the console binds: an id, a description, a tooltip, and a row on the help screen.

The classes are found by importing the whole package (tests/widgets/package_classes.py), not
listed by hand, so a new pane or dialog with keys is covered the day it is written.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.binding import Binding
from textual.dom import DOMNode

from tests.widgets.console_helpers import settle
from tests.widgets.help_table import help_rows
from tests.widgets.package_classes import classes_defining
from vllm_console.app import VllmConsoleApp
from vllm_console.config import Settings
from vllm_console.screens.help import HelpScreen, section_key, section_title

OWNERS = classes_defining("BINDINGS")


def test_the_classes_with_keys_are_found() -> None:
    names = {owner.__qualname__ for owner in OWNERS}
    expected = {"VllmConsoleApp", "ModelTable", "ModelBrowser", "ServerPane", "ChatPane"}
    assert expected | {"PromptInput", "HelpScreen", "LaunchScreen", "DownloadScreen"} <= names


@pytest.mark.parametrize("owner", OWNERS, ids=lambda owner: owner.__qualname__)
def test_every_binding_has_an_id_a_description_and_a_tooltip(owner: type[DOMNode]) -> None:
    bindings = vars(owner)["BINDINGS"]
    for binding in bindings:
        assert isinstance(binding, Binding), (owner, binding)
        assert binding.id, (owner, binding)
        assert binding.description, (owner, binding)
        assert binding.tooltip, (owner, binding)
    ids = [binding.id for binding in bindings]
    assert len(ids) == len(set(ids)), f"{owner.__qualname__}: an id used twice"


async def test_every_binding_is_on_the_help_screen(settings: Settings, demo_catalog: Any) -> None:
    app = VllmConsoleApp(settings, catalog=demo_catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        rows = help_rows(app.screen)
        count = 0
        for owner in OWNERS:
            title = section_title(section_key(owner.__module__))
            for binding in Binding.make_bindings(vars(owner)["BINDINGS"]):
                row = (app.get_key_display(binding), binding.description, binding.tooltip)
                assert row in rows.get(title, []), (owner.__qualname__, binding.id, title)
                count += 1
        palette = ("^p", "Palette", "The command palette: type a model's name to jump to it")
        assert palette in rows[section_title("vllm_console.app")]
        assert sum(len(section) for section in rows.values()) == count + 1  # nothing else
