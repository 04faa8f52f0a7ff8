"""Property tests of the weight-file choice and the quantized parameter count (checks and
strategies in `tests.fuzz.strategies_weights`, shared with bench/fuzz_campaign.py)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.strategies_weights import PARSERS

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", sorted(PARSERS))
@pytest.mark.parametrize("which", [1, 2])
def test_never_raises(name: str, which: int) -> None:
    check, *strategies = PARSERS[name]

    @FAST
    @given(st.data())
    def run(data: st.DataObject) -> None:
        check(data.draw(strategies[which - 1]))

    run()
