"""The console meets hostile names and text: escapes shown literally, markup never obeyed.

Model folders named with an OSC title sequence, a clear-screen sequence and Rich markup are
scanned for real; a server's log and a served model's name carry the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.content import Content
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static

from tests.fakes.hostile_names import IDS, SHOWN, inert, write_hostile_models
from vllm_console.app import VllmConsoleApp
from vllm_console.config import Settings
from vllm_console.core.endpoint.client import EndpointStatus, ServedModel
from vllm_console.core.serve.runs import RunArchive
from vllm_console.screens.runs import RunsScreen
from vllm_console.widgets.chat.state import model_options
from vllm_console.widgets.models.details import ModelDetails
from vllm_console.widgets.models.palette import literal
from vllm_console.widgets.server.log_view import BufferedLog


async def settle(app: VllmConsoleApp, pilot: Any) -> None:
    """Until the panes are in and the scan is over (it starts after the first frame)."""
    await app.panes_ready.wait()
    while app.browser.scanning:
        await app.workers.wait_for_complete()
        await pilot.pause()
    await pilot.pause()


def shown(widget: Static) -> str:
    rendered = widget.render()
    return rendered.plain if isinstance(rendered, Content | Text) else str(rendered)


async def test_the_console_shows_hostile_folder_names_literally(settings: Settings) -> None:
    write_hostile_models(settings.model_dirs[-1])
    app = VllmConsoleApp(settings)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(app, pilot)
        table = app.query_one(DataTable)
        cells = [table.get_cell_at(Coordinate(row, 0)) for row in range(table.row_count)]
        assert all(isinstance(cell, Text) for cell in cells)
        assert {cell.plain for cell in cells} == set(SHOWN)
        assert all(not cell.spans and not cell.style for cell in cells)  # no markup applied
        rows = [table.render_line(y).text for y in range(table.row_count + 1)]
        assert all(inert(row) for row in rows)
        for name in SHOWN:
            assert any(name[:20] in row for row in rows), (name, rows)
        titles = set()
        for _ in range(table.row_count):
            details = app.query_one(ModelDetails)
            title = shown(details.query_one(".details-title", Static))
            titles.add(title)
            text = "\n".join(shown(static) for static in details.query(Static))
            assert inert(text)
            await pilot.press("down")
            await pilot.pause()
        assert titles == set(SHOWN)


class LogHost(App[None]):
    def compose(self) -> ComposeResult:
        yield BufferedLog(id="log")


async def test_the_log_view_shows_escapes_and_keeps_the_true_lines() -> None:
    lines = ["INFO ok", "model says \x1b[2J\x1b]0;pwned\x07 and \u202eevil", "[bold]not bold[/]"]
    app = LogHost()
    async with app.run_test(size=(100, 10)) as pilot:
        log = app.query_one(BufferedLog)
        log.feed(lines)
        log.flush()
        await pilot.pause()
        assert log.lines == [
            "INFO ok",
            "model says \\x1b[2J\\x1b]0;pwned\\x07 and \\u202eevil",
            "[bold]not bold[/]",
        ]
        assert log.all_lines == lines  # the filter and a saved log see what the server wrote
        log.search = "pwned"
        await pilot.pause()
        assert log.lines == ["model says \\x1b[2J\\x1b]0;pwned\\x07 and \\u202eevil"]


def test_palette_prompts_show_names_as_typed() -> None:
    for name in ("[bold red]x[/]", "[$accent]y", "[B]z", "a\\[b]c", "Evil\x1b[2J/X", "x\\"):
        expected = name.replace("\x1b", "\\x1b")
        assert Content.from_markup(literal(name)).plain == expected


def test_served_model_names_are_text_not_markup() -> None:
    model = ServedModel("[b]m\x1b[2J")
    status = EndpointStatus(base_url="http://x/v1", reachable=True, models=(model,))
    [(label, value)] = model_options(status, None)
    assert isinstance(label, Text) and label.plain == "[b]m\\x1b[2J" and value == "[b]m\x1b[2J"


def test_folders_are_real(tmp_path: Path) -> None:
    """The names above can be folders on this file system (none holds a '/')."""
    for name in IDS:
        (tmp_path / name).mkdir()
    assert len(list(tmp_path.iterdir())) == len(IDS)


class RunsHost(App[None]):
    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def on_mount(self) -> None:
        self.push_screen(RunsScreen(self.settings))


async def test_the_runs_screen_shows_a_hostile_run_literally(settings: Settings) -> None:
    recorder = RunArchive(settings.runs_dir).new("[bold red]x[/]\x1b[2J", ["vllm"], {}, 8000)
    recorder.write_lines(["said \x1b]0;pwned\x07"])
    recorder.finish(status="failed", returncode=1, reason="[link=http://x]y\x07")
    app = RunsHost(settings)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = app.screen
        await wait_for_workers(app, pilot)
        table = screen.query_one(DataTable)
        model = table.get_cell_at(Coordinate(0, 1))
        assert isinstance(model, Text) and model.plain == "[bold red]x[/]\\x1b[2J"
        info = shown(screen.query_one("#runs-info", Static))
        assert "[link=http://x]y\\x07" in info and inert(info)
        assert screen.query_one(BufferedLog).lines == ["said \\x1b]0;pwned\\x07"]


async def wait_for_workers(app: App[Any], pilot: Any) -> None:
    for _ in range(50):
        await app.workers.wait_for_complete()
        await pilot.pause(0.05)
        if app.screen.query_one(BufferedLog).lines:
            return
