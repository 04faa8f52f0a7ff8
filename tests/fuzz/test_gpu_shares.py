"""Property test of the GPU memory attribution (see strategies_gpu): whatever NVML reads and
however the servers' PIDs overlap, each PID counts once and the shares plus the rest never
exceed the memory used."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.fuzz import strategies_gpu as fuzz

# A few seconds in the fast suite; bench/fuzz_campaign.py runs the long campaign.
FAST = settings(
    max_examples=100,
    deadline=None,  # the check times each input itself (1 s), on a shared machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FAST
@given(fuzz.readings())
def test_shares(data: Any) -> None:
    fuzz.check_shares(data)
