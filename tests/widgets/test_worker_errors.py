"""A worker that raises, anywhere in the console, is said in one error notification."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import SimpleNamespace
from typing import Any, cast

import pytest
from textual.dom import DOMNode
from textual.worker import Worker, WorkerState

import vllm_console
from tests.widgets.console_helpers import wait_until
from vllm_console.app import VllmConsoleApp
from vllm_console.config import Settings
from vllm_console.widgets.worker_errors import ReportsWorkerErrors, failure_line


class Notices:
    """Stands in for `App.notify`: what was said, and how."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, message: str, **options: Any) -> None:
        self.calls.append((message, options))


async def broken() -> None:
    raise ValueError("[bold]no such[/bold] thing\nand a second line")


@pytest.mark.parametrize("where", ["browser", "app"])
async def test_a_failing_worker_is_notified_once(
    settings: Settings, demo_catalog: Any, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    app = VllmConsoleApp(settings, catalog=demo_catalog)
    notices = Notices()
    async with app.run_test(size=(120, 40)) as pilot:
        await app.panes_ready.wait()
        await app.workers.wait_for_complete()
        monkeypatch.setattr(app, "notify", notices)
        node: DOMNode = app.browser if where == "browser" else app
        worker = node.run_worker(broken(), name="broken", group="test-group", exit_on_error=False)
        await wait_until(pilot, lambda: bool(notices.calls), 5, "the notification")
        await pilot.pause()
        assert worker.state is WorkerState.ERROR
        assert app.is_running  # exit_on_error=False: the console goes on
    [(message, options)] = notices.calls
    assert message == "test-group (broken) failed: ValueError: [bold]no such[/bold] thing"
    assert options["severity"] == "error" and options["markup"] is False


def test_failure_line_without_a_name_or_a_message() -> None:
    class Quiet(Exception):
        pass

    worker = SimpleNamespace(name="", group="probe", error=Quiet())
    assert failure_line(cast("Worker[object]", worker)) == "probe failed: Quiet"


def test_every_node_that_runs_workers_reports_their_errors() -> None:
    """Worker.StateChanged does not bubble: a node that runs workers must forward failures."""
    found, missing = [], []
    for info in pkgutil.walk_packages(vllm_console.__path__, "vllm_console."):
        if info.name.startswith("vllm_console.core") or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not issubclass(cls, DOMNode):
                continue
            source = inspect.getsource(cls)
            if "@work(" in source or "self.run_worker(" in source:
                found.append(cls.__qualname__)
                if not issubclass(cls, ReportsWorkerErrors):
                    missing.append(cls.__qualname__)
    assert {"CatalogFeed", "ServerPane", "LaunchScreen"} <= set(found)  # the scan sees them
    assert not missing
    # the controllers run theirs on the App (`app.run_worker`)
    assert issubclass(VllmConsoleApp, ReportsWorkerErrors)
