"""Snapshot of the main screen at 120x40; its SVG is also the README screenshot.

Regenerate both after an intended change of the screen with one command:

    .venv/bin/pytest tests/snapshots --snapshot-update

(tests/snapshots/conftest.py then copies the 120x40 snapshot to assets/screenshot-main.svg.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vllm_console.app import VllmConsoleApp
from vllm_console.config import Settings

HERE = Path(__file__).parent
SNAPSHOT = HERE / "__snapshots__" / "test_main_screen" / "test_main_screen_120x40.svg"
ASSET = HERE.parent.parent / "assets" / "screenshot-main.svg"  # embedded by the README

# Fixed, made-up paths: the picture must not depend on the machine that draws it.
DEMO_SETTINGS = Settings(
    hf_hub_cache_override=Path("/home/you/.cache/huggingface/hub"),
    home=Path("/home/you"),
    cwd=Path("/home/you/work"),
)


async def settle(pilot: Any) -> None:
    await pilot.app.panes_ready.wait()  # the side tabs join after the first frame
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_main_screen_120x40(snap_compare: Any, demo_catalog: Any) -> None:
    app = VllmConsoleApp(DEMO_SETTINGS, catalog=demo_catalog)
    assert snap_compare(app, terminal_size=(120, 40), run_before=settle)


def test_main_screen_80x24_stacked(snap_compare: Any, demo_catalog: Any) -> None:
    app = VllmConsoleApp(DEMO_SETTINGS, catalog=demo_catalog)
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle)


def test_empty_state_120x40(snap_compare: Any, fake_catalog: Any) -> None:
    app = VllmConsoleApp(DEMO_SETTINGS, catalog=fake_catalog([]))
    assert snap_compare(app, terminal_size=(120, 40), run_before=settle)


def test_readme_screenshot_is_the_snapshot(request: pytest.FixtureRequest) -> None:
    if request.config.getoption("--snapshot-update", default=False):
        pytest.skip("the snapshot is being rewritten; conftest copies it afterwards")
    assert ASSET.read_bytes() == SNAPSHOT.read_bytes(), (
        "assets/screenshot-main.svg is stale: run `.venv/bin/pytest tests/snapshots "
        "--snapshot-update`"
    )
