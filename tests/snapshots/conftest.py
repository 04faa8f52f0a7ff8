"""After `--snapshot-update` has written the SVGs, refresh the README screenshot from one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SNAPSHOT = HERE / "__snapshots__" / "test_main_screen" / "test_main_screen_120x40.svg"
ASSET = HERE.parent.parent / "assets" / "screenshot-main.svg"


def pytest_sessionfinish(session: pytest.Session) -> None:
    # syrupy writes snapshots in its own (tryfirst) sessionfinish, so the file is new here.
    if session.config.getoption("--snapshot-update", default=False) and SNAPSHOT.is_file():
        ASSET.parent.mkdir(exist_ok=True)
        shutil.copyfile(SNAPSHOT, ASSET)
