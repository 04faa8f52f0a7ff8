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


@pytest.fixture(autouse=True)
def _no_driver_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU strip shows a machine without a driver, whatever this machine has."""
    from tests.widgets.gpu_helpers import no_driver_sampler

    monkeypatch.setattr("vllm_console.app.default_sampler_factory", lambda: no_driver_sampler)
