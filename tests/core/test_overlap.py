"""A launch beside other servers: what they hold is taken, once, and a clash is named."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.core.test_fit import entry_for, gpu

from vllm_console.core.gpu.fit import Estimate, Verdict, check_fit, will_it_fit
from vllm_console.core.gpu.overlap import Overlap, SharedGpu, beside, overlaps
from vllm_console.core.serve.spec import LaunchSpec

GiB = 1 << 30
RANK = {Verdict.WONT_FIT: 0, Verdict.TIGHT: 1, Verdict.FITS: 2}


def test_held_memory_already_used_is_not_counted_twice() -> None:
    # a ready server holds 40 GiB of GPU 0: NVML's used memory has it already
    (shared,) = beside([gpu(80, used_gib=41)], {0: 40 * GiB})
    assert shared == SharedGpu(0, 80 * GiB, 39 * GiB, 40 * GiB)


def test_a_starting_server_takes_what_it_will_hold() -> None:
    # it holds 40 GiB but has allocated 2 GiB so far: the new launch gets 40, not 77
    first, second = beside([gpu(80, used_gib=3), gpu(80, used_gib=3, index=1)], {0: 40 * GiB})
    assert first.memory_free == 40 * GiB and first.held == 40 * GiB
    assert second.memory_free == 77 * GiB and second.held == 0


def test_an_overlap_that_does_not_fit_names_the_gpu_and_what_is_missing() -> None:
    gpus = [gpu(80, used_gib=1), gpu(80, used_gib=1, index=1)]
    (clash,) = overlaps(gpus, {1: 40 * GiB}, 0.9)
    assert clash == Overlap(1, 40 * GiB, clash.wanted, 40 * GiB)
    assert round(clash.wanted / GiB, 1) == 72.0 and round(clash.missing / GiB, 1) == 32.0
    assert clash.describe() == (
        "GPU 1: other servers hold 40.0 GiB, this launch takes 72.0 GiB: 32.0 GiB missing"
    )
    assert overlaps(gpus, {1: 40 * GiB}, 0.45) == []  # 36 GiB fits beside them
    assert overlaps(gpus, {}, 0.9) == []
    assert overlaps([gpu(80, used_gib=50)], {}, 0.9) == []  # not a server's: the verdict says it


def test_the_verdict_counts_the_other_servers() -> None:
    entry = entry_for("qwen2.5-7b-instruct")
    spec = LaunchSpec(str(entry.path), gpu_memory_utilization=0.5, max_model_len=4096)
    alone = will_it_fit(entry, spec, [gpu(80, used_gib=1)])
    assert alone.verdict is Verdict.FITS
    shared = will_it_fit(entry, spec, beside([gpu(80, used_gib=1)], {0: 60 * GiB}))
    assert shared.verdict is Verdict.WONT_FIT
    assert "20.0 GiB free of 80.0 GiB per GPU" in shared.reason
    assert shared.reason.endswith("; 0.21 would do")  # the utilization beside them


estimates = st.builds(
    Estimate,
    params=st.none(),
    params_from=st.just(""),
    weights_bytes=st.none(),
    kv_bytes_per_token=st.none(),
    gpus_needed=st.integers(1, 3),
    weights_per_gpu=st.integers(0, 100 * GiB),
    kv_per_token_per_gpu=st.integers(1, 1 << 20),
    margin_per_gpu=st.integers(0, 4 * GiB),
    max_model_len=st.integers(16, 1 << 17),
    model_context=st.none() | st.integers(16, 1 << 17),
)


@st.composite
def devices(draw: st.DrawFn) -> list[SharedGpu]:
    count = draw(st.integers(1, 4))
    out = []
    for index in range(count):
        total = draw(st.integers(1 * GiB, 200 * GiB))
        out.append(SharedGpu(index, total, draw(st.integers(0, total))))
    return out


held_maps = st.dictionaries(st.integers(0, 4), st.integers(0, 300 * GiB), max_size=4)


@settings(max_examples=300, deadline=None)
@given(estimates, devices(), held_maps, held_maps, st.floats(0.05, 1.0))
def test_more_held_memory_never_makes_a_launch_fit_better(
    est: Estimate,
    gpus: list[SharedGpu],
    held: dict[int, int],
    more: dict[int, int],
    util: float,
) -> None:
    bigger = {i: held.get(i, 0) + more.get(i, 0) for i in held.keys() | more.keys()}
    before = check_fit(est, beside(gpus, held), util)
    after = check_fit(est, beside(gpus, bigger), util)
    assert RANK[after.verdict] <= RANK[before.verdict], (before.reason, after.reason)
    clashes_before = {o.index for o in overlaps(gpus, held, util)}
    clashes_after = {o.index for o in overlaps(gpus, bigger, util)}
    assert clashes_before <= clashes_after
    for shared, plain in zip(beside(gpus, bigger), gpus, strict=True):
        assert shared.memory_free is not None and plain.memory_free is not None
        assert 0 <= shared.memory_free <= plain.memory_free  # never more than NVML says
    for clash in overlaps(gpus, bigger, util):
        assert clash.missing > 0 and clash.held > 0
