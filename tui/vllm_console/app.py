"""The App: bindings, the command palette and navigation between widgets and screens.

It owns no data of its own: the model browser scans, the details pane renders, the server
pane runs vLLM, dialogs launch and download. The App passes their messages on (a highlighted
model goes to the details pane, a launch request to the server pane) and decides which
screen is shown. Heavy modules are imported by workers after the first frame, never here.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.screen import Screen
from textual.widget import MountError
from textual.widgets import Header, TabbedContent, TabPane

from vllm_console.config import Settings
from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.core.catalog.port import Catalog
from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.serve.spec import LaunchRequest
from vllm_console.messages import JumpToModel, ModelDownloaded
from vllm_console.widgets.footer import Footer
from vllm_console.widgets.models.browser import ModelBrowser
from vllm_console.widgets.models.details import ModelDetails
from vllm_console.widgets.models.palette import ModelCommands
from vllm_console.widgets.server.status import ServerState, header_text

if TYPE_CHECKING:
    from collections.abc import Iterator

    from vllm_console.controllers.gpu_guard import GpuGuard
    from vllm_console.core.serve.runs import RunInfo
    from vllm_console.screens.download import Hub
    from vllm_console.screens.quit import QuitChoice
    from vllm_console.widgets.chat.pane import ChatPane
    from vllm_console.widgets.gpu.gauges import GpuGauges, SamplerFactory
    from vllm_console.widgets.metrics.panel import MetricsPanel
    from vllm_console.widgets.server.pane import ServerPane

# Set to a file path, the console writes time.time() there after its first frame and exits:
# bench/bench_first_frame.py measures startup with it. Read in run_app, not at import.
FIRST_FRAME_ENV = "VLLM_CONSOLE_EXIT_AFTER_FIRST_FRAME"

MAIN_ONLY = (
    "focus_models",
    "filter",
    "rescan",
    "download",
    "help",
    "stop",
    "show_log",
    "show_chat",
    "show_metrics",
    "relaunch_fix",
    "history",
)
NEEDS_PANES = ("stop", "show_log", "show_chat", "show_metrics", "relaunch_fix")
WIDE_TABS = ("tab-server", "tab-chat", "tab-metrics")  # tabs that widen the side
PIDS_INTERVAL = 2.0  # seconds between reads of the server's process tree (for the GPU strip)


def default_sampler_factory() -> SamplerFactory:
    """The real NVML sampler (it loads NVML in its own thread, after the first frame)."""
    from vllm_console.core.gpu.nvml import Sampler

    return Sampler


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


class VllmConsoleApp(App[None]):
    """The console: the model browser, its details and the server, with dialogs over them."""

    CSS_PATH = "app.tcss"
    TITLE = "vLLM console"
    COMMANDS = App.COMMANDS | {ModelCommands}
    # Below this width the browser and the side tabs stack instead of squeezing.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "slash",
            "filter",
            "Filter",
            id="filter",
            tooltip="Type to narrow the model table; enter or ↓ returns to it, escape clears",
        ),
        Binding(
            "r",
            "rescan",
            "Rescan",
            id="rescan",
            tooltip="Look for models again (the hub cache and the model folders)",
        ),
        Binding(
            "d",
            "download",
            "Download",
            id="download",
            tooltip="Download a model from the hub or HF_ENDPOINT's mirror",
        ),
        Binding(
            "s",
            "stop",
            "Stop",
            id="stop",
            tooltip="Stop the server: SIGTERM, a grace period, then SIGKILL of its process group",
        ),
        Binding(
            "l",
            "show_log",
            "Log",
            id="log",
            tooltip="The server tab: phase, diagnosis and the live log",
        ),
        Binding(
            "c",
            "show_chat",
            "Chat",
            id="chat",
            tooltip="The chat tab: talk to the server (pointed at a launched one once it is ready)",
        ),
        Binding(
            "m",
            "show_metrics",
            "Metrics",
            id="metrics",
            tooltip="The metrics tab: the server's /metrics, read while the tab is shown",
        ),
        Binding(
            "f",
            "relaunch_fix",
            "Fix",
            id="fix",
            tooltip="After a failure with a known fix: the launch dialog with that field changed",
        ),
        Binding("h", "history", "Runs", id="history", tooltip="Past runs and their logs"),
        Binding(
            "question_mark",
            "help",
            "Help",
            id="help",
            tooltip="This screen: every key, pane by pane",
        ),
        Binding(
            "q",
            "quit",
            "Quit",
            id="quit",
            tooltip="Leave the console (asks first while a server runs)",
        ),
        # Out of the chat's prompt (or any pane) back to the model table: keys work again.
        Binding(
            "escape",
            "focus_models",
            "Models",
            show=False,
            id="models",
            tooltip="Back to the model table from the chat prompt or any pane",
        ),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog | None = None,
        hub: Hub | None = None,
        first_frame_file: Path | None = None,
        check_leftovers: bool = False,
        sampler_factory: SamplerFactory | None = None,
    ) -> None:
        """`sampler_factory` makes the GPU strip's sampler; None: the real NVML one."""
        super().__init__()
        self.settings = settings
        self._catalog = catalog
        self._hub = hub
        self._first_frame_file = first_frame_file
        self._check_leftovers = check_leftovers
        self.catalog_entries: tuple[ModelEntry, ...] = ()
        self._catalog_text = ""
        self.server_state = ServerState()  # the server pane's, as its last message said
        self._sampler_factory = sampler_factory  # None: the real one, once the strip mounts
        self._gpu_text = ""
        self._highlighted: ModelEntry | None = None  # for the details pane, once mounted
        self.panes_ready = asyncio.Event()  # set once the tabs after the first frame are in
        self.gpu_guard: GpuGuard | None = None  # with the GPU strip, after the first frame

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
        from vllm_console.controllers.gpu_guard import GpuGuard
        from vllm_console.screens.gpu_holders import ask_to_kill
        from vllm_console.widgets.chat.pane import ChatPane
        from vllm_console.widgets.chat.state import EndpointConfig
        from vllm_console.widgets.gpu.gauges import GpuGauges
        from vllm_console.widgets.metrics.panel import MetricsPanel
        from vllm_console.widgets.server.pane import ServerPane

        side = TabbedContent(id="side")
        await self.query_one("#main").mount(side)
        await side.add_pane(TabPane("Details", ModelDetails(id="details"), id="tab-details"))
        self.query_one("#details", ModelDetails).entry = self._highlighted
        chat = ChatPane(EndpointConfig.from_settings(self.settings), export_dir=self.settings.cwd)
        await side.add_pane(
            TabPane("Server", ServerPane(self.settings, id="server"), id="tab-server")
        )
        await side.add_pane(TabPane("Chat", chat, id="tab-chat"))
        metrics = MetricsPanel(self.settings.base_url, self.settings.api_key)
        await side.add_pane(TabPane("Metrics", metrics, id="tab-metrics"))
        self.gpu_guard = GpuGuard(self, ask_to_kill)
        factory = self._sampler_factory or default_sampler_factory()
        await self.mount(GpuGauges(factory, id="gpus"), before=self.query_one(Footer))

    def on_mount(self) -> None:
        self._catalog_text = catalog_summary((), scanning=True)
        self._refresh_sub_title()
        self.query_one("#model-table").focus()
        self.set_interval(1.0, self._refresh_sub_title, name="header-clock")
        self.set_interval(PIDS_INTERVAL, self._refresh_server_pids, name="server-pids")
        if self._first_frame_file is not None:
            self.call_after_refresh(self._first_frame_reached)
        self.call_after_refresh(self._mount_rest)
        if self._check_leftovers and self._first_frame_file is None:
            self.call_after_refresh(self._find_leftovers)

    def _first_frame_reached(self) -> None:
        assert self._first_frame_file is not None
        self._first_frame_file.write_text(f"{time.time()}\n", encoding="utf-8")
        self.exit()

    def format_title(self, title: str, sub_title: str) -> Content:
        # One separator, owned by the title: no styled run starts with a space.
        if not sub_title:
            return Content(title)
        return Content.assemble(f"{title} ", (f"│ {sub_title}", "dim"))

    def _refresh_sub_title(self) -> None:
        server = header_text(self.server_state)
        parts = (self._catalog_text, server, self._gpu_text)
        self.sub_title = " · ".join(part for part in parts if part)

    @property
    def browser(self) -> ModelBrowser:
        return self.query_one("#browser", ModelBrowser)

    @property
    def server(self) -> ServerPane:
        from vllm_console.widgets.server.pane import ServerPane

        return self.query_one("#server", ServerPane)

    @property
    def chat(self) -> ChatPane:
        from vllm_console.widgets.chat.pane import ChatPane

        return self.query_one(ChatPane)

    @property
    def metrics(self) -> MetricsPanel:
        from vllm_console.widgets.metrics.panel import MetricsPanel

        return self.query_one(MetricsPanel)

    @property
    def gauges(self) -> GpuGauges:
        from vllm_console.widgets.gpu.gauges import GpuGauges

        return self.query_one("#gpus", GpuGauges)

    def palette_entries(self) -> tuple[ModelEntry, ...]:
        return self.catalog_entries

    def get_system_commands(self, screen: Screen[object]) -> Iterator[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Run history", "Past runs and their logs", self.action_history)

    # -- messages from widgets and screens ------------------------------------------------

    @on(ModelBrowser.Highlighted)
    def _show_details(self, message: ModelBrowser.Highlighted) -> None:
        # query, not query_one: a late highlight may arrive while the app closes
        self._highlighted = message.entry
        entry = message.entry
        for details in self.query("#details").results(ModelDetails):
            details.entry = entry
            details.fit = self.browser.fits.get(entry.key) if entry is not None else None

    @on(ModelBrowser.CatalogChanged)
    def _catalog_changed(self, message: ModelBrowser.CatalogChanged) -> None:
        self.catalog_entries = message.entries
        self._catalog_text = catalog_summary(message.entries, message.scanning)
        self._refresh_sub_title()
        self._update_side()

    def _update_side(self) -> None:
        # With nothing to describe, no server and no chat, the empty state gets the width.
        sides = self.query("#side").results(TabbedContent)
        tab = next((side.active for side in sides), "tab-details")
        empty = (
            not self.catalog_entries
            and self.server_state.phase is None
            and tab not in ("tab-chat", "tab-metrics")
        )
        self.query_one("#main").set_class(empty, "-no-models")

    @on(ModelBrowser.Chosen)
    def _model_chosen(self, message: ModelBrowser.Chosen) -> None:
        if self.panes_ready.is_set():  # the server pane joins just after the first frame
            self._open_launch(message.entry)

    def on_server_pane_state_changed(self, message: ServerPane.StateChanged) -> None:
        before, self.server_state = self.server_state, message.state
        state = message.state
        if state.phase is Phase.READY and before.phase is not Phase.READY and state.url:
            self._point_at_server(state)
        if not state.running:  # stopped, failed or detached: nothing of ours on the GPUs
            from vllm_console.widgets.gpu.gauges import GpuGauges

            for gauges in self.query("#gpus").results(GpuGauges):
                ended = before.running and state.phase in (Phase.STOPPED, Phase.FAILED)
                if ended and self.gpu_guard is not None:  # does the memory come back?
                    self.gpu_guard.server_ended(gauges.baseline)
                gauges.server_pids = frozenset()
                gauges.baseline = None
        self._refresh_sub_title()
        self._update_side()
        self.refresh_bindings()

    def _point_at_server(self, state: ServerState) -> None:
        """On Ready the chat and the metrics follow the server (and stay after it stops)."""
        assert state.url is not None
        request = state.request
        model: str | None
        if request is not None:
            model = request.spec.served_model_name or request.spec.model
            api_key = request.spec.api_key or self.settings.api_key
        else:  # attached to an earlier run
            model, api_key = state.label or None, self.settings.api_key
        self.chat.point_at(state.url, api_key, model, source="local server")
        self.metrics.point_at(state.url, api_key)

    def on_gpu_gauges_updated(self, message: GpuGauges.Updated) -> None:
        from vllm_console.widgets.gpu.gauges import memory_summary

        self._gpu_text = memory_summary(message.snapshot)
        self._refresh_sub_title()
        self.browser.set_gpus(message.snapshot)
        if self.gpu_guard is not None:
            self.gpu_guard.seen(message.ours)
            self.gpu_guard.snapshot(message.snapshot)

    def _refresh_server_pids(self) -> None:
        pid = self.server.pid if self.server_state.running else None
        if pid is not None:
            self._read_server_pids(pid)

    @work(thread=True, exclusive=True, group="server-pids", exit_on_error=False)
    def _read_server_pids(self, pid: int) -> None:
        from vllm_console.core.serve.proctable import session_pids

        pids = frozenset(session_pids(pid)) | {pid}
        self.call_from_thread(self._set_server_pids, pid, pids)

    def _set_server_pids(self, pid: int, pids: frozenset[int]) -> None:
        if self.server_state.running and self.server.pid == pid:
            self.gauges.server_pids = pids
            if self.gpu_guard is not None:
                self.gpu_guard.add_pids(pids)

    @on(TabbedContent.TabActivated, "#side")
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        self.query_one("#main").set_class(event.pane.id in WIDE_TABS, "-wide-tab")
        self._update_side()

    @on(JumpToModel)
    def _jump_to_model(self, message: JumpToModel) -> None:
        if not self.browser.select(message.key):
            self.notify("That model is no longer in the list.", severity="warning")

    @on(ModelDownloaded)
    def _model_downloaded(self, message: ModelDownloaded) -> None:
        self.browser.rescan(select_path=message.path, select_id=message.repo_id)

    # -- launching ------------------------------------------------------------------------

    def _open_launch(self, entry: ModelEntry) -> None:
        if self.server_state.running:
            self.notify("A server is running: stop it (s) before launching another.")
            return
        self._launch_dialog(entry.key, entry.id, str(entry.path))

    @work(exclusive=True, group="launch-dialog", exit_on_error=False)
    async def _launch_dialog(
        self, key: str, model_id: str, path: str, fix: tuple[str, object] | None = None
    ) -> None:
        import asyncio

        from vllm_console.core.serve.spec import load_saved_specs
        from vllm_console.screens.launch import LaunchScreen
        from vllm_console.screens.launch_form import apply_fix, initial_spec

        saved = await asyncio.to_thread(load_saved_specs, self.settings.specs_file)
        spec = initial_spec(self.settings, path, model_id, saved.get(key))
        if fix is not None:
            spec = apply_fix(spec, *fix)
        guard = self.gpu_guard
        screen = LaunchScreen(
            self.settings,
            model_key=key,
            model_id=model_id,
            spec=spec,
            changed=fix[0] if fix else None,
            entry=next((e for e in self.browser.entries if e.key == key), None),
            gpus=lambda: self.gauges.snapshot,
            kill=guard.kill if guard is not None else None,
        )
        request = await self.push_screen_wait(screen)
        if request is not None:
            self._launch(request)

    def _launch(self, request: LaunchRequest) -> None:
        gauges = self.gauges
        gauges.server_pids = frozenset()
        gauges.baseline = gauges.snapshot  # before our server takes any memory
        if self.gpu_guard is not None:
            self.gpu_guard.launched()
        self.server.launch(request)
        self.query_one("#side", TabbedContent).active = "tab-server"

    def action_relaunch_fix(self) -> None:
        state = self.server_state
        finding, request = state.fix, state.request
        if finding is None or finding.fix is None or request is None:
            return
        fix = (finding.fix.field, finding.fix.value)
        self._launch_dialog(request.model_key, request.model_id, request.model_path, fix)

    # -- stop, quit and what earlier runs left -------------------------------------------

    def action_stop(self) -> None:
        self._stop_server()

    def _stop_server(self) -> None:
        """Stop the server, reading its processes first: a worker started since the last
        periodic read would otherwise be unknown to the memory check after the stop (its
        memory could be named only as a change, with no PID to kill). One pass over /proc."""
        pid = self.server.pid if self.server_state.running else None
        if pid is not None and self.gpu_guard is not None:
            from vllm_console.core.serve.proctable import session_pids

            self.gpu_guard.add_pids(frozenset(session_pids(pid)) | {pid})
        self.server.stop()

    def action_show_log(self) -> None:
        self.query_one("#side", TabbedContent).active = "tab-server"
        self.server.log_view.focus()

    def action_focus_models(self) -> None:
        self.query_one("#model-table").focus()

    def action_show_chat(self) -> None:
        self.query_one("#side", TabbedContent).active = "tab-chat"
        self._update_side()
        self.chat.focus_prompt()

    def action_show_metrics(self) -> None:
        self.query_one("#side", TabbedContent).active = "tab-metrics"
        self._update_side()

    async def action_quit(self) -> None:
        self._quit_flow()

    @work(exclusive=True, group="quit", exit_on_error=False)
    async def _quit_flow(self) -> None:
        state = self.server_state
        if not state.running or state.attached_run is not None:
            self.exit()
            return
        from vllm_console.screens.quit import QuitScreen

        choice: QuitChoice | None = await self.push_screen_wait(QuitScreen(state.label))
        if choice == "leave" and self.server.detach():
            self.exit()
        elif choice == "stop":
            self.notify("Stopping the server…")
            self._stop_server()
            await self.server.wait_idle()
            for _ in range(40):  # the pane's last state message starts the memory check
                if not self.server_state.running:
                    break
                await asyncio.sleep(0.05)
            if self.gpu_guard is not None:  # held memory is shown (and can be killed) first
                await self.gpu_guard.idle.wait()
            self.exit()

    @work(thread=True, exclusive=True, group="leftovers", exit_on_error=False)
    def _find_leftovers(self) -> None:
        from vllm_console.core.serve.leftovers import find_leftovers

        found = find_leftovers(self.settings)
        if found:
            self.call_from_thread(self._show_leftovers, found)

    def _show_leftovers(self, found: list[object]) -> None:
        from vllm_console.core.serve.leftovers import Leftover
        from vllm_console.screens.leftovers import LeftoversScreen

        items = [item for item in found if isinstance(item, Leftover)]
        self.push_screen(LeftoversScreen(self.settings, items), self._attach_to_run)

    def _attach_to_run(self, run: RunInfo | None) -> None:
        if run is not None:
            self.server.attach(run)
            self.query_one("#side", TabbedContent).active = "tab-server"

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
        if action == "stop":
            return True if self.server_state.running else None
        if action == "relaunch_fix":
            return self.server_state.fix is not None
        return True


def run_app(settings: Settings) -> int:
    """Run the console until the user quits; the exit status for the CLI."""
    # What is imported by now lives as long as the process: out of the collector's reach, or
    # the first full collection (the first frame's allocations trigger one) walks all of it,
    # ~50 ms on a 2-core box. The CLI turns collection off while importing: on again here.
    gc.freeze()
    gc.enable()
    marker = os.environ.get(FIRST_FRAME_ENV)
    app = VllmConsoleApp(
        settings, first_frame_file=Path(marker) if marker else None, check_leftovers=True
    )
    app.run()
    return app.return_code or 0
