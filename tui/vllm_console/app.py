"""The App: bindings, the command palette and navigation between widgets and screens.

It owns no data: the model browser scans, the details pane renders, the fleet panel holds
the servers, dialogs launch and download. The App passes their messages on (a highlighted
model to the details pane, the servers' to `controllers.server`, which launches, stops, quits
and watches the GPUs after a stop) and decides which screen and tab are shown. A worker that
fails anywhere is said in one notification (`widgets.worker_errors`). Heavy modules are
imported by workers after the first frame, never here.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.screen import Screen
from textual.widget import MountError
from textual.widgets import Header, TabbedContent

from vllm_console.app_keys import APP_BINDINGS
from vllm_console.config import Settings
from vllm_console.controllers.server import ServerController
from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.core.catalog.port import Catalog
from vllm_console.messages import JumpToModel, ModelDownloaded
from vllm_console.screens.dialogs import Dialogs
from vllm_console.widgets.footer import Footer
from vllm_console.widgets.header_line import HeaderLine, catalog_summary, title_content
from vllm_console.widgets.models.browser import ModelBrowser
from vllm_console.widgets.models.details import ModelDetails
from vllm_console.widgets.models.palette import ModelCommands
from vllm_console.widgets.server.status import ServerState
from vllm_console.widgets.side import LIVE_TABS, WIDE_TABS, PaneLookup
from vllm_console.widgets.worker_errors import ReportsWorkerErrors, WorkerFailed, failure_line

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from vllm_console.controllers.gpu_guard import GpuGuard
    from vllm_console.core.fleet.model import Member
    from vllm_console.screens.download import Hub
    from vllm_console.widgets.fleet.panel import FleetPanel
    from vllm_console.widgets.gpu.gauges import GpuGauges, SamplerFactory
    from vllm_console.widgets.server.pane import ServerPane

NEEDS_PANES = ("server", "show_log", "show_chat", "show_pane")
MAIN_ONLY = (*NEEDS_PANES, "focus_models", "filter", "rescan", "download", "help", "history")


def default_sampler_factory() -> SamplerFactory:
    """The real NVML sampler (it loads NVML in its own thread, after the first frame)."""
    from vllm_console.core.gpu.nvml import Sampler

    return Sampler


class VllmConsoleApp(PaneLookup, ReportsWorkerErrors, App[None]):
    """The console: the model browser, its details and the servers, with dialogs over them."""

    CSS_PATH = "app.tcss"
    TITLE = "vLLM console"
    COMMANDS = App.COMMANDS | {ModelCommands}
    # Below this width the browser and the side tabs stack instead of squeezing.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = list(APP_BINDINGS)

    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog | None = None,
        hub: Hub | None = None,
        first_frame_file: Path | None = None,
        check_leftovers: bool = False,
        sampler_factory: SamplerFactory | None = None,
        members: Sequence[Member] = (),
    ) -> None:
        """`sampler_factory`: the GPU strip's sampler (None: NVML's); `members`: a fleet file's."""
        super().__init__()
        self.settings = settings
        self._catalog = catalog
        self._hub = hub
        self._first_frame_file = first_frame_file
        self._check_leftovers = check_leftovers
        self.catalog_entries: tuple[ModelEntry, ...] = ()
        self.header_line = HeaderLine()
        self.server_state = ServerState()  # the selected server's, as its last message said
        self._sampler_factory = sampler_factory  # None: the real one, once the strip mounts
        self._highlighted: ModelEntry | None = None  # for the details pane, once mounted
        self.panes_ready = asyncio.Event()  # set once the tabs after the first frame are in
        self.servers = ServerController(self, Dialogs(), members)

    def compose(self) -> ComposeResult:
        yield Header(icon="▲")
        # No models until the first listing arrives: the side tabs start hidden.
        with Horizontal(id="main", classes="-no-models"):
            yield ModelBrowser(self.settings, catalog=self._catalog, id="browser")
        # The side tabs (details, server, chat, metrics) and the GPU strip join right after
        # the first frame (_mount_rest): their imports and layout would double the time to it.
        yield Footer()

    async def _mount_rest(self) -> None:
        if self._first_frame_file is not None:  # the startup benchmark exits at this frame
            return
        try:
            await self._mount_tabs_and_strip()
        except MountError:  # quit before the first frame finished: nothing left to mount into
            return
        self.panes_ready.set()
        self._update_side()

    async def _mount_tabs_and_strip(self) -> None:
        from vllm_console.widgets.gpu.gauges import GpuGauges
        from vllm_console.widgets.side import SideTabs

        side = SideTabs(id="side")
        await self.query_one("#main").mount(side)
        await side.add_panes(self.settings, self._highlighted)
        factory = self._sampler_factory or default_sampler_factory()
        await self.mount(GpuGauges(factory, id="gpus"), before=self.query_one(Footer))
        self.servers.panes_mounted()

    def on_mount(self) -> None:
        self._refresh_sub_title()
        self.query_one("#model-table").focus()
        self.set_interval(1.0, self._refresh_sub_title, name="header-clock")
        if self._first_frame_file is not None:
            self.call_after_refresh(self._first_frame_reached)
        self.call_after_refresh(self._mount_rest)
        if self._check_leftovers and self._first_frame_file is None:
            self.call_after_refresh(self.servers.find_leftovers)

    def _first_frame_reached(self) -> None:
        assert self._first_frame_file is not None
        self._first_frame_file.write_text(f"{time.time()}\n", encoding="utf-8")
        self.exit()

    def format_title(self, title: str, sub_title: str) -> Content:
        return title_content(title, sub_title)

    def _refresh_sub_title(self) -> None:
        self.sub_title = self.header_line.text(self.servers.states())

    @property
    def gpu_guard(self) -> GpuGuard | None:
        """Whether a stopped server's GPU memory comes back; None before the strip is in."""
        return self.servers.guard

    def palette_entries(self) -> tuple[ModelEntry, ...]:
        return self.catalog_entries

    def get_system_commands(self, screen: Screen[object]) -> Iterator[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Run history", "Past runs and their logs", self.action_history)
        yield from self.servers.commands()

    # -- messages from widgets and screens ------------------------------------------------

    @on(ModelBrowser.Highlighted)
    def _show_details(self, message: ModelBrowser.Highlighted) -> None:
        # query, not query_one: a late highlight may arrive while the app closes
        self._highlighted = entry = message.entry
        for details in self.query("#details").results(ModelDetails):
            details.entry = entry
            details.fit = self.browser.fits.get(entry.key) if entry is not None else None

    @on(ModelBrowser.CatalogChanged)
    def _catalog_changed(self, message: ModelBrowser.CatalogChanged) -> None:
        self.catalog_entries = message.entries
        self.header_line.catalog = catalog_summary(message.entries, message.scanning)
        self._refresh_sub_title()
        self._update_side()

    def _update_side(self) -> None:
        # With nothing to describe, no server and no chat, the empty state gets the width.
        tab = next((s.active for s in self.query("#side").results(TabbedContent)), "tab-details")
        empty = not self.catalog_entries and not self.servers.states() and tab not in LIVE_TABS
        for main in self.query("#main"):  # none while the App closes
            main.set_class(empty, "-no-models")

    @on(ModelBrowser.Chosen)
    def _model_chosen(self, message: ModelBrowser.Chosen) -> None:
        if self.panes_ready.is_set():  # the server pane joins just after the first frame
            self.servers.open_launch(message.entry)

    def on_server_pane_state_changed(self, message: ServerPane.StateChanged) -> None:
        self.servers.state_changed(message.name, message.state)
        self._server_shown()

    def on_fleet_panel_selected(self, message: FleetPanel.Selected) -> None:
        self.servers.selected(message.name)
        self._server_shown()

    def _server_shown(self) -> None:
        if self.screen_stack:  # a server's last state may arrive as the App closes
            self._refresh_sub_title()
            self._update_side()
            self.refresh_bindings()

    def on_gpu_gauges_updated(self, message: GpuGauges.Updated) -> None:
        from vllm_console.widgets.gpu.gauges import memory_summary

        self.header_line.gpus = memory_summary(message.snapshot)
        self._refresh_sub_title()
        for browser in self.query("#browser").results(ModelBrowser):  # none while closing
            browser.set_gpus(message.snapshot)
        self.servers.gauges_updated(message)

    def on_worker_failed(self, message: WorkerFailed) -> None:
        # Markup off: an exception's text may hold brackets that would be read as styles.
        self.notify(failure_line(message.worker), severity="error", timeout=10, markup=False)

    @on(TabbedContent.TabActivated, "#side")
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        self.query("#main").set_class(event.pane.id in WIDE_TABS, "-wide-tab")  # none: closing
        self._update_side()

    @on(JumpToModel)
    def _jump_to_model(self, message: JumpToModel) -> None:
        if not self.browser.select(message.key):
            self.notify("That model is no longer in the list.", severity="warning")

    @on(ModelDownloaded)
    def _model_downloaded(self, message: ModelDownloaded) -> None:
        self.browser.rescan(select_path=message.path, select_id=message.repo_id)

    # -- the servers: launch, stop, quit (controllers.server does the work) ----------------

    def action_server(self, what: str) -> None:  # "stop", "stop_all", "relaunch", ...
        self.servers.act(what)

    async def action_quit(self) -> None:
        self.servers.quit()

    # -- tabs -------------------------------------------------------------------------------

    def show_tab(self, tab: str) -> None:
        """Bring a side tab ("tab-server", "tab-chat", ...) to the front."""
        self.query_one("#side", TabbedContent).active = tab

    def action_show_log(self) -> None:
        self.show_tab("tab-server")
        self.fleet.focus_log()

    def action_focus_models(self) -> None:
        self.query_one("#model-table").focus()

    def action_show_chat(self) -> None:
        self.show_tab("tab-chat")
        self._update_side()
        self.chat.focus_prompt()

    def action_show_pane(self, tab: str) -> None:  # "tab-metrics", "tab-bench"
        self.show_tab(tab)
        self._update_side()

    # -- other actions --------------------------------------------------------------------

    def action_filter(self) -> None:
        self.browser.focus_filter()

    def action_rescan(self) -> None:
        self.browser.rescan()

    def action_download(self) -> None:
        from vllm_console.screens.download import DownloadScreen

        self.push_screen(DownloadScreen(self.settings, hub=self._hub))

    def action_history(self) -> None:
        from vllm_console.screens.runs import RunsScreen

        self.push_screen(RunsScreen(self.settings))

    def action_help(self) -> None:
        from vllm_console.screens.help import HelpScreen, help_sections  # loaded on first use

        self.push_screen(HelpScreen(help_sections(self)))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The main screen's keys mean nothing over a dialog.
        if len(self.screen_stack) > 1 and action in MAIN_ONLY:
            return False
        if action in NEEDS_PANES and not self.panes_ready.is_set():
            return False  # the first fraction of a second, before the tabs are mounted
        if action == "server":
            return self.servers.allows(str(parameters[0]))
        return True
