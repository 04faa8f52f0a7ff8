"""Property tests of `core.serve`'s parsers of untrusted text (see strategies_serve): vLLM's
log lines, run records, saved specs and the redaction never raise, and answer within 1 s."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.fuzz import strategies_serve as fuzz

# A few seconds per test in the fast suite; bench/fuzz_campaign.py runs the long campaign.
FAST = settings(
    max_examples=60,
    deadline=None,  # the checks time each input themselves (1 s), on a shared machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FAST
@given(fuzz.log_lines())
def test_next_phase(line: str) -> None:
    fuzz.check_next_phase(line)


@FAST
@given(fuzz.log_tails())
def test_diagnose(lines: list[str]) -> None:
    fuzz.check_diagnose(lines)


@FAST
@given(fuzz.run_records())
def test_run_record(raw: bytes) -> None:
    fuzz.check_run_record(raw)


@FAST
@given(fuzz.saved_specs_files())
def test_saved_specs(raw: bytes) -> None:
    fuzz.check_saved_specs(raw)


@FAST
@given(fuzz.texts_and_keys())
def test_redact(data: Any) -> None:
    fuzz.check_redact(data)


@FAST
@given(fuzz.server_output())
def test_output_batches(data: Any) -> None:
    fuzz.check_output_batches(data)
