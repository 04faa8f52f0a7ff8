"""The App: bindings, the command palette and navigation between widgets and screens.

It owns no data of its own: the model browser scans, the details pane renders, dialogs
download. The App passes their messages on (a highlighted model goes to the details pane)
and decides which screen is shown. Heavy modules are imported by workers after the first
frame, never here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal
from textual.widgets import Footer, Header

from vllm_console.config import Settings
from vllm_console.core.entry import ModelEntry
from vllm_console.messages import JumpToModel, ModelDownloaded
from vllm_console.widgets.catalog_port import Catalog
from vllm_console.widgets.model_browser import ModelBrowser
from vllm_console.widgets.model_details import ModelDetails

if TYPE_CHECKING:
    from vllm_console.screens.download import Hub
    from vllm_console.screens.help import KeyHelp

# Set to a file path, the console writes time.time() there after its first frame and exits:
# bench/bench_first_frame.py measures startup with it. Read in run_app, not at import.
FIRST_FRAME_ENV = "VLLM_CONSOLE_EXIT_AFTER_FIRST_FRAME"

KEY_DETAILS = {
    "filter": "type to narrow the table; enter or ↓ returns to it, escape clears",
    "rescan": "look for models again (the hub cache and the model folders)",
    "download": "download a model from the hub or HF_ENDPOINT's mirror",
    "help": "this screen",
    "quit": "leave the console",
    "browser.sort": "sort by the next column: name, params, dtype, context, size, …",
    "browser.reverse": "reverse the sort order",
    "palette": "command palette: type a model's name to jump to it",
}


def catalog_summary(entries: Iterable[ModelEntry], scanning: bool) -> str:
    """The header's line, e.g. '12 models · 3 with problems · scanning…'."""
    entries = tuple(entries)
    parts = [f"{len(entries)} model{'' if len(entries) == 1 else 's'}"]
    problems = sum(1 for entry in entries if entry.problems)
    if problems:
        parts.append(f"{problems} with problems")
    if scanning:
        parts.append("scanning…")
    return " · ".join(parts)


class ModelCommands(Provider):
    """Command palette entries that jump to a model in the browser."""

    def _entries(self) -> tuple[ModelEntry, ...]:
        app = self.app
        return app.catalog_entries if isinstance(app, VllmConsoleApp) else ()

    def _jump(self, entry: ModelEntry) -> None:
        self.app.post_message(JumpToModel(entry.key))

    @staticmethod
    def _help(entry: ModelEntry) -> str:
        return f"{entry.source} · {entry.path}"

    async def discover(self) -> Hits:
        for entry in self._entries():
            yield DiscoveryHit(
                f"Model: {entry.id}", partial(self._jump, entry), help=self._help(entry)
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for entry in self._entries():
            text = f"Model: {entry.id}"
            score = matcher.match(text)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(text),
                    partial(self._jump, entry),
                    help=self._help(entry),
                )


class VllmConsoleApp(App[None]):
    """The console: the model browser and its details, with dialogs over them."""

    CSS_PATH = "app.tcss"
    TITLE = "vLLM console"
    COMMANDS = App.COMMANDS | {ModelCommands}
    # Below this width the browser and the details pane stack instead of squeezing.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("r", "rescan", "Rescan", id="rescan"),
        Binding("d", "download", "Download", id="download"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog | None = None,
        hub: Hub | None = None,
        first_frame_file: Path | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self._catalog = catalog
        self._hub = hub
        self._first_frame_file = first_frame_file
        self.catalog_entries: tuple[ModelEntry, ...] = ()

    def compose(self) -> ComposeResult:
        yield Header(icon="▲")
        # No models until the first listing arrives: the details pane starts hidden.
        with Horizontal(id="main", classes="-no-models"):
            yield ModelBrowser(self.settings, catalog=self._catalog, id="browser")
            yield ModelDetails(id="details")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = catalog_summary((), scanning=True)
        self.query_one("#model-table").focus()
        if self._first_frame_file is not None:
            self.call_after_refresh(self._first_frame_reached)

    def _first_frame_reached(self) -> None:
        assert self._first_frame_file is not None
        self._first_frame_file.write_text(f"{time.time()}\n", encoding="utf-8")
        self.exit()

    @property
    def browser(self) -> ModelBrowser:
        return self.query_one("#browser", ModelBrowser)

    # -- messages from widgets and screens ------------------------------------------------

    @on(ModelBrowser.Highlighted)
    def _show_details(self, message: ModelBrowser.Highlighted) -> None:
        self.query_one("#details", ModelDetails).entry = message.entry

    @on(ModelBrowser.CatalogChanged)
    def _catalog_changed(self, message: ModelBrowser.CatalogChanged) -> None:
        self.catalog_entries = message.entries
        self.sub_title = catalog_summary(message.entries, message.scanning)
        # With nothing to describe, the empty state gets the whole width.
        self.query_one("#main").set_class(not message.entries, "-no-models")

    @on(JumpToModel)
    def _jump_to_model(self, message: JumpToModel) -> None:
        if not self.browser.select(message.key):
            self.notify("That model is no longer in the list.", severity="warning")

    @on(ModelDownloaded)
    def _model_downloaded(self, message: ModelDownloaded) -> None:
        self.browser.rescan(select_path=message.path, select_id=message.repo_id)

    # -- actions ----------------------------------------------------------------------------

    def action_filter(self) -> None:
        self.browser.focus_filter()

    def action_rescan(self) -> None:
        self.browser.rescan()

    def action_download(self) -> None:
        from vllm_console.screens.download import DownloadScreen

        self.push_screen(DownloadScreen(self.settings, hub=self._hub))

    def action_help(self) -> None:
        from vllm_console.screens.help import HelpScreen  # dialogs load on first use

        self.push_screen(HelpScreen(self.key_help()))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The browser's keys mean nothing over a dialog.
        over_dialog = len(self.screen_stack) > 1
        return not (over_dialog and action in ("filter", "rescan", "download", "help"))

    def key_help(self) -> list[KeyHelp]:
        """One line per binding of the main screen, in footer order, plus the palette."""
        from vllm_console.screens.help import KeyHelp

        bindings: list[Binding] = [
            b for b in (*self.BINDINGS, *ModelBrowser.BINDINGS) if isinstance(b, Binding)
        ]
        rows = [
            KeyHelp(self.get_key_display(b), b.description, KEY_DETAILS.get(b.id or "", ""))
            for b in bindings
        ]
        rows.append(KeyHelp("ctrl+p", "Palette", KEY_DETAILS["palette"]))
        return rows


def run_app(settings: Settings) -> int:
    """Run the console until the user quits; the exit status for the CLI."""
    marker = os.environ.get(FIRST_FRAME_ENV)
    app = VllmConsoleApp(settings, first_frame_file=Path(marker) if marker else None)
    app.run()
    return app.return_code or 0
