"""Property tests of what `vllm-console web` reads from the network (see strategies_web):
no credential but the right one opens, and no message of the browser's is taken for
something it is not."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz import strategies_web as fuzz

# A few seconds in the fast suite; bench/fuzz_campaign.py runs the long campaign.
FAST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("name", sorted(fuzz.PARSERS))
def test_web_parsers(name: str) -> None:
    check, strategy = fuzz.PARSERS[name]

    @FAST
    @given(strategy)
    def run(data: Any) -> None:
        check(data)

    run()
