"""The main screen's side: the Details, Server, Chat and Metrics tabs.

They join right after the first frame (their imports and layout would double the time to
it): the App mounts an empty `SideTabs`, then awaits `add_panes`. The panes do not know each
other; the App wires their messages.
"""

from __future__ import annotations

from textual.widgets import TabbedContent, TabPane

from vllm_console.config import Settings
from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.widgets.models.details import ModelDetails

WIDE_TABS = ("tab-server", "tab-chat", "tab-metrics")  # tabs that widen the side


class SideTabs(TabbedContent):
    """Details of the highlighted model, the server, the chat and the metrics."""

    async def add_panes(self, settings: Settings, entry: ModelEntry | None) -> None:
        """Mount the four panes; `entry` is the model highlighted by then."""
        from vllm_console.widgets.chat.pane import ChatPane
        from vllm_console.widgets.chat.state import EndpointConfig
        from vllm_console.widgets.metrics.panel import MetricsPanel
        from vllm_console.widgets.server.pane import ServerPane

        await self.add_pane(TabPane("Details", ModelDetails(id="details"), id="tab-details"))
        self.query_one("#details", ModelDetails).entry = entry
        chat = ChatPane(EndpointConfig.from_settings(settings), export_dir=settings.cwd)
        await self.add_pane(TabPane("Server", ServerPane(settings, id="server"), id="tab-server"))
        await self.add_pane(TabPane("Chat", chat, id="tab-chat"))
        metrics = MetricsPanel(settings.base_url, settings.api_key)
        await self.add_pane(TabPane("Metrics", metrics, id="tab-metrics"))
