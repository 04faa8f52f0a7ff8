"""A GPU sampler for console tests: one no-driver reading, then its thread ends.

The real sampler retries NVML forever, so `app.workers.wait_for_complete()` would never
return; this one reports what a machine without a driver shows and stops.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tests.fakes.fake_nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeNvml
from vllm_console.core.gpu.nvml import GpuSnapshot, Sampler


class OneShotSampler(Sampler):
    def run(self, stop: threading.Event, on_snapshot: Callable[[GpuSnapshot], None]) -> None:
        failed = self.open()
        if failed is not None:
            on_snapshot(failed)
            return
        try:
            on_snapshot(self.tick())
        finally:
            self.close()


def no_driver_sampler(interval: float) -> Sampler:
    return OneShotSampler(FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND), interval=interval)
