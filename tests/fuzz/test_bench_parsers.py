"""Property tests of the benchmark's parsers of outside input (see strategies_bench): SSE
completion streams in random pieces, `vllm bench serve`'s result JSON, `/metrics` counters,
archived records and ShareGPT files never raise and never give figures no run could have."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from tests.fuzz import strategies_bench as fuzz


@pytest.mark.parametrize("name", sorted(fuzz.PARSERS))
def test_parser(name: str) -> None:
    check, strategy = fuzz.PARSERS[name]

    @settings(max_examples=150, deadline=None)
    @given(strategy)
    def run(data: Any) -> None:
        check(data)

    run()


def test_the_honest_result_reads_back() -> None:
    from vllm_console.core.bench.vllm_bench import parse_result

    step = parse_result(dict(fuzz.HONEST), 4, 8)
    assert (step.completed, step.failed, step.ttft_p99_ms, step.tpot_p50_ms) == (8, 0, 40.0, 5.0)
