"""The main screen's side: the Details, Servers, Chat, Metrics and Bench tabs.

They join right after the first frame (their imports and layout would double the time to
it): the App mounts an empty `SideTabs`, then awaits `add_panes`. The panes do not know each
other; the App wires their messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.css.query import NoMatches
from textual.dom import DOMNode
from textual.widgets import TabbedContent, TabPane

from vllm_console.config import Settings
from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.widgets.models.browser import ModelBrowser
from vllm_console.widgets.models.details import ModelDetails

if TYPE_CHECKING:
    from vllm_console.widgets.bench.panel import BenchPanel
    from vllm_console.widgets.chat.pane import ChatPane
    from vllm_console.widgets.fleet.panel import FleetPanel
    from vllm_console.widgets.gpu.gauges import GpuGauges
    from vllm_console.widgets.metrics.panel import MetricsPanel
    from vllm_console.widgets.server.pane import ServerPane

# Tabs that widen the side; those that keep it shown while there are no models or servers.
WIDE_TABS = ("tab-server", "tab-chat", "tab-metrics", "tab-bench")
LIVE_TABS = ("tab-chat", "tab-metrics", "tab-bench")


class SideTabs(TabbedContent):
    """Details of the highlighted model, the servers, the chat, the metrics and the bench."""

    async def add_panes(self, settings: Settings, entry: ModelEntry | None) -> None:
        """Mount the five panes; `entry` is the model highlighted by then."""
        from vllm_console.core.bench.target import BenchTarget
        from vllm_console.widgets.bench.panel import BenchPanel
        from vllm_console.widgets.chat.pane import ChatPane
        from vllm_console.widgets.chat.state import EndpointConfig
        from vllm_console.widgets.fleet.panel import FleetPanel
        from vllm_console.widgets.metrics.panel import MetricsPanel

        await self.add_pane(TabPane("Details", ModelDetails(id="details"), id="tab-details"))
        self.query_one("#details", ModelDetails).entry = entry
        chat = ChatPane(EndpointConfig.from_settings(settings), export_dir=settings.cwd)
        fleet = FleetPanel(settings, id="fleet")
        await self.add_pane(TabPane("Servers", fleet, id="tab-server"))
        await self.add_pane(TabPane("Chat", chat, id="tab-chat"))
        metrics = MetricsPanel(settings.base_url, settings.api_key)
        await self.add_pane(TabPane("Metrics", metrics, id="tab-metrics"))
        endpoint = BenchTarget(settings.base_url, settings.api_key, settings.model)
        bench = BenchPanel(endpoint, runs_dir=settings.runs_dir, cwd=settings.cwd,
                           vllm_command=settings.vllm_command)  # fmt: skip
        await self.add_pane(TabPane("Bench", bench, id="tab-bench"))


class PaneLookup:
    """Typed lookups of the main screen's panes, for the App that holds them (a mixin). Each
    pane's module is imported on first use: the side joins after the first frame."""

    @property
    def browser(self: Any) -> ModelBrowser:
        return _node(self).query_one("#browser", ModelBrowser)

    @property
    def fleet(self: Any) -> FleetPanel:
        from vllm_console.widgets.fleet.panel import FleetPanel

        return _node(self).query_one("#fleet", FleetPanel)

    @property
    def server(self: Any) -> ServerPane:
        """The selected member's pane; NoMatches while no local member is selected."""
        fleet: FleetPanel = self.fleet
        pane = fleet.selected_pane
        if pane is None:
            raise NoMatches("no local server is selected")
        return pane

    @property
    def chat(self: Any) -> ChatPane:
        from vllm_console.widgets.chat.pane import ChatPane

        return _node(self).query_one(ChatPane)

    @property
    def metrics(self: Any) -> MetricsPanel:
        from vllm_console.widgets.metrics.panel import MetricsPanel

        return _node(self).query_one(MetricsPanel)

    @property
    def bench(self: Any) -> BenchPanel:
        from vllm_console.widgets.bench.panel import BenchPanel

        return _node(self).query_one(BenchPanel)

    @property
    def gauges(self: Any) -> GpuGauges:
        from vllm_console.widgets.gpu.gauges import GpuGauges

        return _node(self).query_one("#gpus", GpuGauges)


def _node(owner: object) -> DOMNode:
    assert isinstance(owner, DOMNode), "PaneLookup is mixed into the App"
    return owner
