"""The console's GPU strip samples a stand-in NVML here (see gpu_helpers)."""

from __future__ import annotations

import pytest

from tests.widgets.gpu_helpers import no_driver_sampler


@pytest.fixture(autouse=True)
def _no_driver_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vllm_console.app.default_sampler_factory", lambda: no_driver_sampler)
