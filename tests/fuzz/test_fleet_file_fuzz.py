"""Property tests of the fleet file (see strategies_fleet): any bytes or hostile YAML give
a FleetFile or a FleetFileError within 1 s, and dump -> parse gives the same fleet."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.fuzz import strategies_fleet as fuzz
from vllm_console.core.fleet.model import Member

# A few seconds per test in the fast suite; bench/fuzz_campaign.py runs the long campaign.
FAST = settings(
    max_examples=80,
    deadline=None,  # the checks time each input themselves (1 s), on a shared machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FAST
@given(fuzz.generated_fleet_files)
def test_generated_fleet_files(raw: Any) -> None:
    fuzz.check_fleet_file(raw)


@FAST
@given(fuzz.mutated_fleet_files)
def test_mutated_fleet_files(raw: Any) -> None:
    fuzz.check_fleet_file(raw)


@FAST
@given(fuzz.fleets())
def test_dump_then_parse_gives_the_same_fleet(members: list[Member]) -> None:
    fuzz.check_round_trip(members)
