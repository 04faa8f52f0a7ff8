"""The Bench tab in the console: `b` shows it, it starts at the configured endpoint, follows
the selected server once it is ready (its served name and launch command with it), and a
sweep run from it is checked against the stand-in's counters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Select, TabbedContent

from tests.widgets.console_helpers import wait_until
from tests.widgets.test_server_flow import launch_and_wait_ready, make_app
from vllm_console.app import VllmConsoleApp
from vllm_console.config import Settings
from vllm_console.widgets.bench.panel import BenchPanel


@pytest.fixture(autouse=True)
def _fast_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VLLM_DELAY", "0.3")
    monkeypatch.delenv("FAKE_VLLM_SCENARIO", raising=False)


async def test_b_shows_the_bench_at_the_configured_endpoint(
    settings: Settings, demo_catalog: Any
) -> None:
    app = VllmConsoleApp(settings, catalog=demo_catalog)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await app.panes_ready.wait()
        await pilot.press("b")
        await pilot.pause()
        assert app.query_one("#side", TabbedContent).active == "tab-bench"
        assert app.query_one("#main").has_class("-wide-tab")
        bench = app.query_one(BenchPanel)
        assert bench.target.base_url == settings.base_url and bench.target.source == "endpoint"
        assert bench.check_action("cancel", ()) is False
        await pilot.press("escape")  # nothing runs: escape is the App's, back to the models
        await pilot.pause()
        assert app.focused is app.query_one("#model-table")


async def test_the_bench_follows_the_server_and_runs_against_it(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    app = make_app(tmp_path, fake_catalog, make_folder_entry)
    async with app.run_test(size=(120, 50)) as pilot:
        await launch_and_wait_ready(app, pilot)
        bench = app.query_one(BenchPanel)
        target = bench.target
        assert target.base_url == f"http://127.0.0.1:{app.settings.port}/v1"
        assert (target.model, target.source, target.server_name) == (
            "org/tiny-model", "local server", "tiny-model",
        )  # fmt: skip
        assert target.launch_argv and "serve" in target.launch_argv
        await pilot.press("b")
        await pilot.pause()
        for field, value in (("bench-levels", "1,2"), ("bench-prompts", "4"),
                             ("bench-input-len", "8"), ("bench-output-len", "4")):  # fmt: skip
            bench.query_one(f"#{field}", Input).value = value
        bench.query_one("#bench-client", Select).value = "console"
        bench.run()
        await wait_until(pilot, lambda: bench.record is not None, 30, "the sweep")
        record = bench.record
        assert record is not None and record.status == "done", record
        for step in record.steps:
            assert step.server is not None and step.server.requests == 4 and not step.mismatch
        assert record.config.server_name == "tiny-model"
        assert (app.settings.runs_dir / record.id / "bench.json").is_file()
        app.server.stop()
        await app.server.wait_idle()
