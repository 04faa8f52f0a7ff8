"""The metrics panel in a small host app, against the stand-in vLLM's /metrics (tests/fakes)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.net import free_port
from vllm_console.core.endpoint.client import make_client, stream_chat
from vllm_console.core.endpoint.metrics import MetricsSnapshot
from vllm_console.widgets.metrics.panel import MetricsPanel, head_line, metrics_table

FAKE_VLLM = Path(__file__).resolve().parents[1] / "fakes" / "fake_vllm.py"
INTERVAL = 0.2


@contextmanager
def fake_vllm() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A stand-in `vllm serve` on loopback, ready; its OpenAI base URL and its process."""
    port = free_port()
    env = {**os.environ, "FAKE_VLLM_DELAY": "0.2", "FAKE_VLLM_SCENARIO": "ok"}
    argv = [sys.executable, str(FAKE_VLLM), "serve", "tiny-model", "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*argv, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{root}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the stand-in vLLM did not become ready")
            time.sleep(0.05)
        yield f"{root}/v1", proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)


@pytest.fixture(scope="module")
def vllm_url() -> Iterator[str]:
    with fake_vllm() as (url, _):
        yield url


class Host(App[None]):
    def __init__(self, panel: MetricsPanel, *, hidden: bool = False) -> None:
        super().__init__()
        self.panel = panel
        self.hidden = hidden
        self.updates: list[MetricsPanel.Updated] = []
        self.tables: list[str] = []  # the table as shown right after each reading

    def compose(self) -> ComposeResult:
        with Vertical(id="holder") as holder:
            holder.display = not self.hidden
            yield self.panel

    def on_metrics_panel_updated(self, event: MetricsPanel.Updated) -> None:
        self.updates.append(event)
        self.tables.append(str(self.panel.query_one("#metrics-table", Static).render()))


async def wait_for(pilot: Any, check: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        await pilot.pause(0.02)


def text(panel: MetricsPanel, name: str) -> str:
    return str(panel.query_one(name, Static).render())


async def chat(base_url: str) -> None:
    async with make_client(base_url) as client:
        hi = [{"role": "user", "content": "hello"}]
        async for _ in stream_chat(client, base_url, None, "tiny-model", hi):
            pass


async def test_shows_vllm_figures_and_generation_rises_after_a_chat(vllm_url: str) -> None:
    panel = MetricsPanel(vllm_url, interval=INTERVAL)
    app = Host(panel)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.updates) >= 2)
        assert "vLLM metrics" in text(panel, "#metrics-head")
        table = text(panel, "#metrics-table")
        assert "0 running · 0 waiting" in table
        assert "KV cache" in table and "0.0 %" in table
        assert "Generation    0.0 tokens/s" in table
        assert panel.query_one("#metrics-spark").display
        before = app.updates[-1].snapshot.generation_tokens or 0.0
        await chat(vllm_url)

        def rising() -> list[MetricsPanel.Updated]:
            return [
                u for u in app.updates if u.rates and (u.rates.generation_tokens_per_s or 0) > 0
            ]

        await wait_for(pilot, rising)
        await pilot.pause()
        words = 9  # the stand-in's reply: "Hello! This is a fake vLLM answering your request."
        assert rising()[0].snapshot.generation_tokens == before + words
        shown = [re.search(r"Generation +([\d.,]+) tokens/s", t) for t in app.tables]
        assert any(float(m.group(1)) > 0 for m in shown if m)
        assert max(panel._history) > 0


async def test_not_vllm_is_a_calm_line_and_polling_goes_on() -> None:
    with FakeOpenAI(vllm=False) as fake:
        panel = MetricsPanel(fake.base_url, interval=INTERVAL)
        app = Host(panel)
        async with app.run_test() as pilot:
            await wait_for(pilot, lambda: len(app.updates) >= 2)
            head = text(panel, "#metrics-head")
            assert "No vLLM metrics here" in head and "HTTP 404" in head
            assert "Trying again every 0.2 s" in head
            assert not panel.query_one("#metrics-table").display
            assert not app._notifications


async def test_unreachable_is_a_calm_line() -> None:
    panel = MetricsPanel(f"http://127.0.0.1:{free_port()}/v1", interval=INTERVAL)
    app = Host(panel)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.updates)
        await pilot.pause()
        assert "cannot connect" in text(panel, "#metrics-head")


async def test_polls_only_while_visible(vllm_url: str) -> None:
    panel = MetricsPanel(vllm_url, interval=INTERVAL)
    app = Host(panel, hidden=True)
    async with app.run_test() as pilot:
        await pilot.pause(3 * INTERVAL)
        assert panel.polls == 0
        app.query_one("#holder").display = True
        await wait_for(pilot, lambda: panel.polls >= 2)
        app.query_one("#holder").display = False
        await pilot.pause(INTERVAL)
        seen = panel.polls
        await pilot.pause(3 * INTERVAL)
        assert panel.polls == seen


async def test_point_at_switches_server(vllm_url: str) -> None:
    with FakeOpenAI(vllm=False) as fake:
        panel = MetricsPanel(fake.base_url, interval=INTERVAL)
        app = Host(panel)
        async with app.run_test() as pilot:
            await wait_for(pilot, lambda: app.updates)
            panel.point_at(vllm_url)
            await wait_for(pilot, lambda: "vLLM metrics" in text(panel, "#metrics-head"))
            assert vllm_url.removesuffix("/v1") in text(panel, "#metrics-head")


async def test_a_server_that_stops_answering_leaves_its_last_reading_dimmed() -> None:
    with fake_vllm() as (url, proc):
        panel = MetricsPanel(url, interval=INTERVAL)
        app = Host(panel)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: len(app.updates) >= 2)
            await chat(url)
            await wait_for(pilot, lambda: (app.updates[-1].snapshot.generation_tokens or 0) > 0)
            await pilot.pause()
            before = text(panel, "#metrics-table")
            assert not panel.has_class("-stale")
            assert "KV cache" in before and "0 running" in before
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            await wait_for(pilot, lambda: "No answer since" in text(panel, "#metrics-head"))
            head = text(panel, "#metrics-head")
            assert "cannot connect" in head and "the last reading is below" in head
            assert re.search(r"since \d\d:\d\d:\d\d", head)
            assert panel.has_class("-stale")
            assert panel.query_one("#metrics-table").display
            assert panel.query_one("#metrics-spark").display
            assert text(panel, "#metrics-table") == before  # kept as it was, not blanked
            # Pointing at another server forgets the kept reading.
            panel.point_at(f"http://127.0.0.1:{free_port()}/v1")
            await wait_for(pilot, lambda: "cannot connect" in text(panel, "#metrics-head"))
            await pilot.pause()
            assert not panel.has_class("-stale")
            assert not panel.query_one("#metrics-table").display
            assert "No vLLM metrics here" in text(panel, "#metrics-head")


def test_texts_without_readings() -> None:
    empty = MetricsSnapshot(0.0, problems=("/metrics: no vLLM metrics",))
    assert "reading http://x/metrics" in head_line("http://x/metrics", None, 1.5).plain
    assert "no vLLM metrics" in head_line("http://x/metrics", empty, 1.5).plain
    full = MetricsSnapshot(0.0, requests_running=2, requests_waiting=1, kv_cache_usage=0.95)
    table = metrics_table(full, None).plain
    assert "2 running · 1 waiting" in table and "95.0 %" in table
    assert "since start" in table
