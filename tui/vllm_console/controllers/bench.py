"""The Bench tab's wiring: where the chat, the metrics and the bench point.

`member_target` says what a fleet member is as an endpoint: a remote one's URL and key, or a
ready local server's URL, served name and key, with its name and command line (a benchmark
keeps them with its result). `controllers.server` points the three tabs at the selected
member with it; they stay there after the member stops. Until a member is selected the bench
points at the configured endpoint (VLLM_BASE_URL), as the chat does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vllm_console.core.bench.target import BenchTarget
from vllm_console.core.endpoint.client import server_root
from vllm_console.core.serve.diagnose import Phase

if TYPE_CHECKING:
    from vllm_console.app import VllmConsoleApp


def member_target(app: VllmConsoleApp, name: str) -> BenchTarget | None:
    """The member `name` as an endpoint; None while it is a local server that is not ready."""
    settings = app.settings
    remote = app.fleet.remotes.get(name)
    if remote is not None and remote.url is not None:
        key = remote.api_key or settings.api_key
        url = f"{server_root(remote.url)}/v1"
        return BenchTarget(url, key, remote.served_name or None, "remote server", name)
    pane = app.fleet.pane(name)
    state = pane.state if pane is not None else None
    if state is None or state.phase is not Phase.READY or state.url is None:
        return None
    request = state.request
    if request is None:  # attached to an earlier run
        return BenchTarget(state.url, settings.api_key, state.label or None, "local server", name)
    spec = request.spec
    model = spec.served_model_name or spec.model
    key = spec.api_key or settings.api_key
    return BenchTarget(state.url, key, model, "local server", name, request.argv)


def point_tabs(app: VllmConsoleApp, name: str) -> None:
    """The chat, the metrics and the bench at member `name`, when it is an endpoint now."""
    target = member_target(app, name)
    if target is None:
        return
    app.chat.point_at(target.base_url, target.api_key, target.model, source=target.source)
    app.metrics.point_at(target.base_url, target.api_key)
    app.bench.point_at(target)
