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


HEAD = b"HTTP/1.1 200 OK\r\n"


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 " + b"1" * 4304 + b" OK\r\n\r\n",  # past int()'s 4300-digit limit
        "HTTP/1.1 ²00 OK\r\n\r\n".encode("latin-1"),  # isdigit(), yet not for int()
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 099 OK\r\n\r\n",
        HEAD + "content-length: ²\r\n\r\n".encode("latin-1"),
        HEAD + b"content-length: " + b"9" * 5000 + b"\r\n\r\nbody",
        HEAD + b"transfer-encoding: chunked\r\n\r\n-2\r\nabcd\r\n0\r\n\r\n",
        HEAD + b"transfer-encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n",
        HEAD + b"transfer-encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        HEAD + b"transfer-encoding: chunked\r\n\r\n1_0\r\nhello\r\n0\r\n\r\n",
    ],
)
def test_the_wire_refuses_numbers_that_are_not_plain(data: bytes) -> None:
    """Each of these raised, or misread the framing, before; now each is an answer (bad
    lengths read as 'until close') or a WireError, never an exception from the protocol."""
    fuzz.check_wire(("mutated", b"", data, []))
    got, outcome = fuzz.run_wire(data, [])
    if isinstance(outcome, tuple):
        assert b"".join(got) in (b"", b"body")  # a bad length: the body runs until close
    else:
        assert "not" in str(outcome) or "never" in str(outcome)


def test_the_wire_reads_a_chunk_size_with_spaces_and_an_extension() -> None:
    data = HEAD + b"transfer-encoding: chunked\r\n\r\n5 ;name=x\r\nhello\r\n0\r\n\r\n"
    got, outcome = fuzz.run_wire(data, [3, 40])
    assert outcome == (200, b"", True) and b"".join(got) == b"hello"
