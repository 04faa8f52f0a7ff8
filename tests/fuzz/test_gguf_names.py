"""Property tests of GGUF file-name and quantization-id parsing (see strategies_gguf)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.fuzz import strategies_gguf as fuzz

FAST = settings(
    max_examples=200,
    deadline=None,  # the checks time each input themselves
    suppress_health_check=[HealthCheck.too_slow],
)


@FAST
@given(fuzz.PARSERS["gguf_names"][1])
def test_gguf_names(names: Any) -> None:
    fuzz.check_names(names)


@FAST
@given(fuzz.PARSERS["quant_id"][1])
def test_quant_id(name: Any) -> None:
    fuzz.check_id(name)
