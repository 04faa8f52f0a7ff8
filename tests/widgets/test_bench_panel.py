"""The Bench tab in a small host app, against the stand-in vLLM (tests/fakes/fake_vllm.py, a
real child process): a sweep from the form with live progress, the table, the archive and
the plots' comparison, export in three formats, a bad field named, and escape cancelling at
once (the server's running gauge drops to zero)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Button, Input, Select, Static

from tests.fakes.bench_server import BenchServer
from tests.fakes.net import free_port
from tests.widgets.console_helpers import wait_until
from vllm_console.core.bench.load import Progress
from vllm_console.core.bench.target import BenchTarget
from vllm_console.widgets.bench.panel import BenchPanel
from vllm_console.widgets.bench.plots import BenchPlots
from vllm_console.widgets.bench.results import ResultsTable

FAKE_VLLM = Path(__file__).resolve().parents[1] / "fakes" / "fake_vllm.py"
HOSTILE = "[bold red]evil[/]\x1b]0;owned\x07"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[BenchServer]:
    server = BenchServer(tmp_path, token_s=0.005)
    yield server
    server.kill()


class Host(App[None]):
    def __init__(self, panel: BenchPanel) -> None:
        super().__init__()
        self.panel = panel
        self.finished: list[BenchPanel.Finished] = []

    def compose(self) -> ComposeResult:
        yield self.panel

    def on_bench_panel_finished(self, event: BenchPanel.Finished) -> None:
        self.finished.append(event)


def fill(panel: BenchPanel, levels: str, prompts: int, input_len: int, output_len: int) -> None:
    for field, value in (("bench-levels", levels), ("bench-prompts", str(prompts)),
                         ("bench-input-len", str(input_len)),
                         ("bench-output-len", str(output_len))):  # fmt: skip
        panel.query_one(f"#{field}", Input).value = value
    panel.query_one("#bench-client", Select).value = "console"


def note(panel: BenchPanel) -> str:
    return str(panel.query_one("#bench-note", Static).render())


def make_panel(url: str, tmp: Path, model: str | None = "tiny") -> BenchPanel:
    target = BenchTarget(url, None, model, "local server", "tiny", ("vllm", "serve", "x"))
    return BenchPanel(target, runs_dir=tmp / "state" / "runs", cwd=tmp)


async def test_a_sweep_from_the_form_fills_the_table_and_the_archive(
    fake: BenchServer, tmp_path: Path
) -> None:
    await fake.ready()
    panel = make_panel(fake.url, tmp_path)
    app = Host(panel)
    seen: list[Progress] = []
    async with app.run_test(size=(120, 60)) as pilot:
        fill(panel, "1,3", 6, 16, 32)
        panel.query_one("#bench-prompts", Input).value = "six"
        await pilot.click("#bench-run")
        await pilot.pause()
        assert note(panel) == "Prompts: 'six' is not a whole number" and not panel.running
        panel.query_one("#bench-prompts", Input).value = "6"
        panel.query_one("#bench-rate", Input).value = "0"
        await pilot.pause(0.3)
        await pilot.click("#bench-run")
        await pilot.pause()
        assert note(panel).startswith("Requests/s: '0': give 0.001 to") and not panel.running
        panel.query_one("#bench-rate", Input).value = "inf"
        await pilot.pause(0.3)  # a button ignores a click while it still shows the last one
        await pilot.click("#bench-run")
        cancel, levels = panel.query_one("#bench-cancel", Button), panel.query_one("#bench-levels")
        running_looks: set[tuple[bool, bool]] = set()
        while not app.finished:
            bar = panel.bars.get(3) or panel.bars.get(1)
            if bar is not None and bar.progress is not None:
                seen.append(bar.progress)
                running_looks.add((cancel.disabled, levels.disabled))
            await pilot.pause(0.01)
        assert (False, True) in running_looks  # Cancel on, the form read-only while it runs
        assert (cancel.disabled, levels.disabled) == (True, False)
        record = app.finished[0].record
        assert record.status == "done" and [s.concurrency for s in record.steps] == [1, 3]
        assert any(0 < p.done < p.total for p in seen), "progress came while the step ran"
        for step in record.steps:
            assert (step.completed, step.failed, step.total_output_tokens) == (6, 0, 6 * 32)
            assert step.total_input_tokens == 6 * 16 and step.mismatch is None
        await pilot.pause(0.2)
        table = panel.query_one(ResultsTable)
        assert table.row_count == 2
        row = table.get_row_at(1)
        assert row[:3] == ["3", "6", "0"] and row[-1] == "ok"
        assert "6/6 done" in str(panel.bars[3].query_one(".bench-step-count", Static).render())
        kept = app.finished[0].kept
        assert kept is not None and (kept / "bench.json").is_file()
        assert json.loads((kept / "bench.json").read_text())["launch_argv"] == [
            "vllm",
            "serve",
            "x",
        ]
        assert f"kept as {record.id}" in note(panel)

        # A second run, paced: the first is offered for comparison and overlaid.
        panel.query_one("#bench-rate", Input).value = "10"
        panel.query_one("#bench-burstiness", Input).value = "inf"
        await pilot.click("#bench-run")
        await pilot.pause()
        assert "arriving 10 req/s (evenly)" in note(panel)
        await wait_until(pilot, lambda: len(app.finished) == 2, 30, "the second run")
        paced = app.finished[1].record
        assert (paced.config.request_rate, paced.config.burstiness) == (10.0, math.inf)
        assert paced.steps[-1].duration_s >= 0.6  # the sixth request was due at 6/10 s
        plots = panel.query_one(BenchPlots)
        await wait_until(pilot, lambda: plots.compared() is not None, 5, "the comparison")
        compared = plots.compared()
        assert compared is not None and compared.id == record.id
        assert panel.record is not None and panel.record.id != record.id


async def test_export_in_three_formats_says_where(fake: BenchServer, tmp_path: Path) -> None:
    await fake.ready()
    panel = make_panel(fake.url, tmp_path)
    app = Host(panel)
    async with app.run_test(size=(120, 60)) as pilot:
        fill(panel, "2", 4, 8, 4)
        path = panel.query_one("#bench-export-path", Input)
        path.value = "out.md"
        await pilot.click("#bench-run")
        await wait_until(pilot, lambda: app.finished, 20, "the run")
        await pilot.pause()
        for name in ("out.md", "out.csv", str(tmp_path / "out.json"), "nowhere/out.md", "out.txt"):
            path.value = name
            panel.export()
            await pilot.pause(0.3)
            await app.workers.wait_for_complete()
            await pilot.pause()
            if name == "out.txt":
                assert "end the name in .md, .csv or .json" in note(panel)
            elif name.startswith("nowhere"):
                assert note(panel).startswith(f"cannot write {tmp_path}/nowhere/out.md")
            else:
                kind = {".md": "Markdown", ".csv": "CSV", ".json": "JSON"}[Path(name).suffix]
                assert note(panel) == f"Exported as {kind} to {tmp_path / Path(name).name}"
        md = (tmp_path / "out.md").read_text()
        assert "| 2 | 4 | 0 |" in md and "# Benchmark of tiny" in md
        rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text(), newline="")))
        assert rows[0]["concurrency"] == "2" and rows[0]["server_requests"] == "4"
        data = json.loads((tmp_path / "out.json").read_text())
        assert data["kind"] == "bench" and data["steps"][0]["completed"] == 4
        assert not (tmp_path / "out.txt").exists()


async def test_escape_cancels_at_once_and_the_server_stops_generating(tmp_path: Path) -> None:
    slow = BenchServer(tmp_path, token_s=0.05)
    try:
        await slow.ready()
        panel = make_panel(slow.url, tmp_path)
        app = Host(panel)
        async with app.run_test(size=(120, 60)) as pilot:
            fill(panel, "4", 40, 8, 200)  # ten seconds a request
            await pilot.click("#bench-run")
            await wait_until(pilot, lambda: panel.bars, 10, "the step")
            await asyncio.sleep(0.5)
            assert await slow.running() == 4
            panel.focus()
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.finished, 3, "the cancel")
            assert app.finished[0].record.status == "cancelled"
            await wait_until(pilot, lambda: not panel.running, 3, "the worker's end")
            for _ in range(40):
                if await slow.running() == 0:
                    break
                await asyncio.sleep(0.05)
            assert await slow.running() == 0  # the connections closed: nothing generates
            assert panel.query_one("#bench-run", Button).disabled is False
    finally:
        os.killpg(slow.proc.pid, signal.SIGKILL)
        slow.proc.wait(5)


async def test_hostile_model_names_are_text_not_markup(fake: BenchServer, tmp_path: Path) -> None:
    panel = make_panel(fake.url, tmp_path, model=HOSTILE)
    app = Host(panel)
    async with app.run_test(size=(120, 60)) as pilot:
        await pilot.pause()
        head = str(panel.query_one("#bench-head", Static).render())
        assert "[bold red]evil[/]\\x1b]0;owned\\x07" in head and "\x1b" not in head
        assert head.endswith(f"  local server tiny · {fake.url}")
        panel.point_at(BenchTarget(fake.url, None, "[link=x]y[/link]", "endpoint"))
        await pilot.pause()
        assert "[link=x]y[/link]" in str(panel.query_one("#bench-head", Static).render())


def test_cancel_applies_only_while_running(tmp_path: Path) -> None:
    panel = make_panel("http://127.0.0.1:9/v1", tmp_path)
    assert panel.check_action("cancel", ()) is False  # escape goes on to the App
    assert panel.check_action("other", ()) is True


async def test_an_unreachable_endpoint_is_a_finding(tmp_path: Path) -> None:
    panel = make_panel(f"http://127.0.0.1:{free_port()}/v1", tmp_path)
    app = Host(panel)
    async with app.run_test(size=(120, 60)) as pilot:
        fill(panel, "1", 2, 8, 4)
        await pilot.click("#bench-run")
        await wait_until(pilot, lambda: app.finished, 20, "the failure")
        assert app.finished[0].record.status == "failed"
        await pilot.pause()
        findings = str(panel.query_one("#bench-findings", Static).render())
        assert findings.startswith("• ") and len(findings) > 4
        assert note(panel).startswith("failed: 0 steps")


async def test_a_step_that_ends_before_its_bar_is_drawn_shows_its_count(tmp_path: Path) -> None:
    """A step can start and end between two frames (a fast server, a short step): its bar's
    parts are not mounted yet when the end is drawn. It must neither raise nor lose the count."""
    from vllm_console.core.bench.stats import CONSOLE, StepResult
    from vllm_console.core.bench.sweep import StepDone, StepStarted

    panel = make_panel("http://127.0.0.1:9/v1", tmp_path)
    app = Host(panel)
    async with app.run_test(size=(120, 60)) as pilot:
        step = StepResult(1, CONSOLE, 8, 7, 1, 1.0, 256, 128, 7.0, 128.0, 384.0,
                          1.0, 2.0, 1.0, 1.0, 2.0, 3.0)  # fmt: skip
        panel._on_event(StepStarted(1, 8, CONSOLE))
        panel._on_event(StepDone(step))  # at once, as a fast step's events come
        await pilot.pause()
        count = str(panel.bars[1].query_one(".bench-step-count", Static).render())
        assert count.startswith("8/8 done, 1 failed")
