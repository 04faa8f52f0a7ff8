"""The whole App with a fake catalog: details follow the cursor, help, palette, layout, quit."""

from __future__ import annotations

from typing import Any

from textual.command import CommandPalette
from textual.widgets import DataTable, Input

from tests.widgets.console_helpers import settle
from tests.widgets.help_table import help_text
from vllm_console.app import VllmConsoleApp
from vllm_console.config import Settings
from vllm_console.screens.help import HelpScreen
from vllm_console.screens.quit import QuitScreen
from vllm_console.widgets.header_line import catalog_summary
from vllm_console.widgets.models.details import ModelDetails


async def quit_with_q(app: VllmConsoleApp, pilot: Any) -> None:
    """q with no server running: the App ends at once, status 0, without asking."""
    await pilot.press("q")
    await pilot.pause()
    assert not app.is_running
    assert app.return_code == 0
    assert not any(isinstance(screen, QuitScreen) for screen in app.screen_stack)
    assert len(app.screen_stack) == 1  # no dialog of any kind was pushed


async def test_opens_on_the_browser_with_a_summary(settings: Settings, demo_catalog: Any) -> None:
    app = VllmConsoleApp(settings, catalog=demo_catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert app.sub_title == "8 models · 2 with problems · no GPU"
        assert app.focused is app.query_one(DataTable)
        assert app.screen.has_class("-wide")


async def test_selecting_a_row_shows_its_details(settings: Settings, demo_catalog: Any) -> None:
    app = VllmConsoleApp(settings, catalog=demo_catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        details = app.query_one(ModelDetails)
        assert details.entry is not None and details.entry.id == "Qwen/Qwen2.5-7B-Instruct"
        await pilot.press("down", "down")
        await pilot.pause()
        assert details.entry is not None
        assert details.entry.id == "mistralai/Mistral-7B-Instruct-v0.3"


async def test_slash_focuses_the_filter(settings: Settings, demo_catalog: Any) -> None:
    app = VllmConsoleApp(settings, catalog=demo_catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"gemma", "enter")
        assert app.query_one(Input).value == "gemma"
        assert app.query_one(DataTable).row_count == 1
        assert app.focused is app.query_one(DataTable)
        await quit_with_q(app, pilot)  # q in the table quits (it was text in the filter)


async def test_help_screen_opens_and_closes(settings: Settings, demo_catalog: Any) -> None:
    app = VllmConsoleApp(settings, catalog=demo_catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = help_text(app.screen)
        for key in ("/", "r", "d", "o", "q", "^p", "Rescan", "Download", "Sort", "Send"):
            assert key in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_command_palette_jumps_to_a_model(settings: Settings, demo_catalog: Any) -> None:
    app = VllmConsoleApp(settings, catalog=demo_catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"gemma")
        await pilot.pause(0.5)  # the palette searches in the background
        await pilot.press("enter")
        await pilot.pause()
        details = app.query_one(ModelDetails)
        assert details.entry is not None and details.entry.id == "google/gemma-2-9b-it"


async def test_palette_jump_clears_a_filter_that_hides_the_model(
    settings: Settings, demo_catalog: Any
) -> None:
    app = VllmConsoleApp(settings, catalog=demo_catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"qwen", "enter")
        key = next(e.key for e in app.catalog_entries if e.id == "google/gemma-2-9b-it")
        from vllm_console.messages import JumpToModel

        app.post_message(JumpToModel(key))
        await pilot.pause()
        assert app.query_one(Input).value == ""
        details = app.query_one(ModelDetails)
        assert details.entry is not None and details.entry.id == "google/gemma-2-9b-it"


async def test_rescan_key_scans_again(settings: Settings, demo_catalog: Any) -> None:
    app = VllmConsoleApp(settings, catalog=demo_catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("r")
        await settle(app, pilot)
        assert demo_catalog.scans == 2


async def test_narrow_terminal_stacks_the_sides(settings: Settings, demo_catalog: Any) -> None:
    app = VllmConsoleApp(settings, catalog=demo_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert app.screen.has_class("-narrow")
        browser, details = app.query_one("#browser"), app.query_one("#details")
        assert details.region.y >= browser.region.bottom  # below, not beside
        assert details.region.width == browser.region.width == 80
        assert app.query_one(DataTable).row_count == 8


async def test_q_quits_with_status_zero(settings: Settings, demo_catalog: Any) -> None:
    app = VllmConsoleApp(settings, catalog=demo_catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await quit_with_q(app, pilot)
    assert app.return_code == 0


def test_catalog_summary(demo_models: list[Any]) -> None:
    assert catalog_summary([], scanning=True) == "0 models · scanning…"
    assert catalog_summary(demo_models[:1], scanning=False) == "1 model"
    assert catalog_summary(demo_models, scanning=False) == "8 models · 2 with problems"


async def test_empty_state_keeps_the_keys_working(settings: Settings, fake_catalog: Any) -> None:
    app = VllmConsoleApp(settings, catalog=fake_catalog([]))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert app.focused is app.query_one(DataTable)  # not the filter: q must not be text
        assert not app.query_one("#details").display or not app.query_one("#details").region
        await quit_with_q(app, pilot)
    assert app.return_code == 0
