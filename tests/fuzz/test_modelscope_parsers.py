"""Property tests of the ModelScope cache's readers (see strategies_modelscope): `.mdl` and
`.mv` markers and folder names never raise, never run anything, answer within 1 s."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from tests.fuzz import strategies_modelscope as fuzz

FAST = settings(
    max_examples=80,
    deadline=None,  # the checks time each input themselves (1 s), on a shared machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FAST
@given(fuzz.mdl_files())
def test_parse_mdl(data: bytes) -> None:
    fuzz.check_parse_mdl(data)


@FAST
@given(fuzz.mv_files())
def test_parse_mv(data: bytes) -> None:
    fuzz.check_parse_mv(data)


@FAST
@given(fuzz.names())
def test_folder_names(name: str) -> None:
    fuzz.check_folder_names(name)


def test_hostile_markers_run_nothing() -> None:
    for data in fuzz.HOSTILE:
        fuzz.check_parse_mdl(data)
    assert fuzz.RAN == []


def test_the_sdks_own_markers_are_read_in_every_protocol() -> None:
    from vllm_console.core.catalog.msmodel import parse_mdl

    assert {parse_mdl(seed) for seed in fuzz.SEEDS} == {
        "Qwen/Qwen2.5-7B-Instruct",
        "damo/nlp_bert",
        "a/b",
    }
