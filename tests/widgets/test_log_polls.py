"""The server pane leaves out the lines in which a server says it answered a poll."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.widgets.console_helpers import wait_until
from tests.widgets.test_fleet import launch_on
from tests.widgets.test_server_flow import make_app
from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.serve.runs import RunArchive
from vllm_console.widgets.server.log_view import is_poll
from vllm_console.widgets.server.pane import WithoutPolls

POLLS = [
    'INFO:     127.0.0.1:32966 - "GET /metrics HTTP/1.1" 200 OK',
    '(APIServer pid=7) INFO:     127.0.0.1:5 - "GET /health HTTP/1.1" 200 OK',
    'INFO:     10.0.0.2:4711 - "GET /version HTTP/1.0" 200 OK',
    'INFO:     127.0.0.1:1 - "GET /metrics?name[]=x HTTP/1.1" 200 OK',
]
KEPT = [
    'INFO:     127.0.0.1:32966 - "GET /metrics HTTP/1.1" 500 Internal Server Error',
    'INFO:     127.0.0.1:32966 - "POST /v1/chat/completions HTTP/1.1" 200 OK',
    'INFO:     127.0.0.1:32966 - "GET /v1/models HTTP/1.1" 200 OK',
    "(APIServer pid=7) INFO 11-26 11:06:12 [api_server.py:1234] Starting vLLM server",
    "WARNING GET /metrics is slow",
]


def test_poll_lines_are_told_from_the_rest() -> None:
    assert all(is_poll(line) for line in POLLS)
    assert not any(is_poll(line) for line in KEPT)


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.integers(1, 5000).map(lambda n: '"GET /metrics?' * n),
        st.integers(1, 5000).map(lambda n: '"GET /metrics?' + "x" * n * 10 + ' HTTP/1.1" 200'),
    )
)
def test_any_line_is_judged_quickly(line: str) -> None:
    started = time.perf_counter()
    is_poll(line)
    assert time.perf_counter() - started < 0.1


class Sink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def reset(self, lines: Any = ()) -> None:
        self.lines = list(lines)

    def feed(self, lines: Any) -> None:
        self.lines += list(lines)


def test_an_attached_run_s_log_is_followed_without_its_polls() -> None:
    sink = Sink()
    view = WithoutPolls(sink)  # type: ignore[arg-type]
    view.reset([*POLLS, KEPT[0]])
    view.feed([KEPT[1], POLLS[0], KEPT[2]])
    assert sink.lines == KEPT[:3]


async def test_the_pane_shows_no_polls_and_the_run_keeps_them(
    tmp_path: Path, fake_catalog: Any, make_folder_entry: Any
) -> None:
    app = make_app(tmp_path, fake_catalog, make_folder_entry)
    async with app.run_test(size=(140, 44)) as pilot:
        name = await launch_on(app, pilot, app.settings.port)
        pane = app.fleet.panes[name]
        await wait_until(pilot, lambda: pane.state.phase is Phase.READY, 20, "ready")
        # the fleet table reads /metrics every 2 s; the stand-in logs each as uvicorn does
        await wait_until(pilot, lambda: str(app.fleet.row(name).reading) != "None", 10)
        await pilot.pause(0.3)
        assert not any(is_poll(line) for line in pane.log_view.all_lines)
        assert any("Starting vLLM server" in line for line in pane.log_view.all_lines)
        await pilot.press("s")
        await wait_until(pilot, lambda: pane.state.phase is Phase.STOPPED, 20, "stopped")
    (run,) = RunArchive(app.settings.runs_dir).all()
    assert any(is_poll(line) for line in run.log_path.read_text().splitlines())
