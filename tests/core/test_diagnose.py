"""Phases from log milestones and findings from failure messages, on vLLM's real wording."""

from __future__ import annotations

import time

import pytest
from tests.fakes import fake_vllm

from vllm_console.core.serve.diagnose import Fix, Phase, diagnose, next_phase

START = [
    "(APIServer pid=7807) INFO 11-26 11:51:20 [utils.py:1] vLLM API server version 0.32.0",
    "Loading safetensors checkpoint shards: 100% Completed | 1/1 [00:00<00:00, 254.69it/s]",
    "(Worker pid=8132) INFO 11-26 11:51:34 [default_loader.py:501] Loading weights took 0.01 s",
    "(EngineCore pid=7979) INFO 11-26 11:51:35 [kv_cache_utils.py:2327] CPU KV cache size: "
    "2,097,152 tokens, Maximum concurrency for 512 tokens per request: 4096.00x",
    "(APIServer pid=7807) INFO 11-26 11:51:37 [entry.py:140] Starting vLLM server on "
    "http://127.0.0.1:8123",
    "INFO:     Application startup complete.",
]


def test_phases_follow_milestones_and_never_go_back() -> None:
    phase, seen = Phase.STARTING, []
    for line in [*START, START[1]]:
        phase = next_phase(phase, line)
        seen.append(phase)
    assert seen == [
        Phase.STARTING,
        Phase.LOADING_WEIGHTS,
        Phase.LOADING_WEIGHTS,
        Phase.ALLOCATING_KV,
        Phase.STARTING_SERVER,
        Phase.STARTING_SERVER,
        Phase.STARTING_SERVER,
    ]


# A GPU start, as vLLM 0.32 words it: compiling before the KV cache, graph capture after it.
GPU_START = [
    "(Worker pid=91) INFO 12-01 10:00:01 [gpu_model_runner.py:3420] Model loading took "
    "14.99 GiB memory and 6.1 seconds",
    "(Worker pid=91) INFO 12-01 10:00:02 [monitor.py:40] [backbone] Starting torch.compile",
    "(Worker pid=91) INFO 12-01 10:00:09 [backends.py:1167] [backbone] Dynamo bytecode "
    "transform time: 6.77 s",
    "(Worker pid=91) INFO 12-01 10:00:31 [monitor.py:62] [backbone] torch.compile takes "
    "28.40 s in total",
    "(Worker pid=91) INFO 12-01 10:00:33 [gpu_worker.py:298] Available KV cache memory: 52.1 GiB",
    "(EngineCore pid=80) INFO 12-01 10:00:33 [kv_cache_utils.py:2327] GPU KV cache size: "
    "426,752 tokens",
    "Capturing CUDA graphs (mixed prefill-decode, PIECEWISE):  43%|####3     | 29/67",
    "(Worker pid=91) INFO 12-01 10:00:49 [gpu_model_runner.py:6582] Graph capturing finished "
    "in 16 secs, took 0.53 GiB",
    "(EngineCore pid=80) INFO 12-01 10:00:50 [core.py:402] init engine (profile, create kv "
    "cache, warmup model) took 44.12 s",
    "(APIServer pid=70) INFO 12-01 10:00:52 [launcher.py:186] Available routes are:",
]
# The CPU build compiles in its warm-up, before the KV cache, and captures no graphs.
CPU_START = [
    "(Worker pid=4361) INFO 12-05 12:16:07 [default_loader.py:501] Loading weights took 0.01 s",
    "(Worker pid=4361) INFO 12-05 12:16:08 [cpu_model_runner.py:87] Warming up model for the "
    "compilation...",
    "(Worker pid=4361) INFO 12-05 12:16:32 [monitor.py:91] [backbone] Initial profiling/warmup "
    "run took 0.03 s",
    "(Worker pid=4361) INFO 12-05 12:16:32 [cpu_model_runner.py:91] Warming up done.",
    "(EngineCore pid=4349) INFO 12-05 12:16:32 [kv_cache_utils.py:2327] CPU KV cache size: "
    "2,097,152 tokens, Maximum concurrency for 2,048 tokens per request: 1024.00x",
    "(APIServer pid=4330) INFO 12-05 12:16:35 [entry.py:140] Starting vLLM server on "
    "http://127.0.0.1:8000",
]


def phases_of(lines: list[str]) -> list[Phase]:
    phase, seen = Phase.STARTING, [Phase.STARTING]
    for line in lines:
        phase = next_phase(phase, line)
        if phase is not seen[-1]:
            seen.append(phase)
    return seen


def test_compiling_and_graph_capture_are_phases_of_their_own() -> None:
    assert phases_of(GPU_START) == [
        Phase.STARTING,
        Phase.LOADING_WEIGHTS,
        Phase.COMPILING,
        Phase.ALLOCATING_KV,
        Phase.WARMING_UP,
        Phase.STARTING_SERVER,
    ]
    assert phases_of(CPU_START) == [
        Phase.STARTING,
        Phase.LOADING_WEIGHTS,
        Phase.COMPILING,
        Phase.ALLOCATING_KV,
        Phase.STARTING_SERVER,
    ]
    # A compile line seen late (a second graph compiled while warming up) moves nothing back.
    assert next_phase(Phase.WARMING_UP, GPU_START[2]) is Phase.WARMING_UP


def tail_of(scenario: str) -> list[str]:
    """The stand-in's traceback tail for a failure, as vLLM's log ends with it."""
    text = fake_vllm.CAUSES[scenario].replace("{site}", "/venv/lib/python3.12/site-packages")
    return [f"(EngineCore pid=7) ERROR 12-05 10:00:00 [core.py:866] {x}" for x in text.split("\n")]


@pytest.mark.parametrize(
    ("scenario", "rule", "cause", "hint", "fix"),
    [
        (
            "bf16",
            "bf16-gpu",
            "This GPU (Tesla T4, compute capability 7.5) cannot compute in bfloat16",
            "--dtype half",
            Fix("dtype", "half", "dtype half (float16)"),
        ),
        ("remote_code", "remote-code", "its own Python code", "--trust-remote-code", None),
        (
            "tp_heads",
            "tp-heads",
            "28 attention heads cannot be split over 8 GPUs",
            "divides 28, a power of two: 1, 2, 4.",
            Fix("tensor_parallel_size", 4, "tensor parallel size 4"),
        ),
        ("world_size", "world-size", "needs 4 GPUs (tensor x pipeline", "GPUs there are", None),
        (
            "quant_gpu",
            "quant-gpu",
            "fp8 quantization needs a GPU of compute capability 8.9 or newer; this one has 8.0",
            "AWQ",
            None,
        ),
        ("architecture", "architecture", "architecture ('FancyNewForCausalLM')", "Upgrade", None),
        ("gated", "gated", "gated on the hub", "HF_TOKEN", None),
        ("repo_not_found", "repo-not-found", "no model by this id", "Check the id", None),
    ],
)
def test_setup_failures_are_named_with_what_to_change(
    scenario: str, rule: str, cause: str, hint: str, fix: Fix | None
) -> None:
    (finding,) = diagnose(tail_of(scenario))
    assert finding.rule == rule
    assert cause in finding.cause and hint in finding.hint
    assert finding.fix == fix


def test_max_model_len_gives_the_exact_fix() -> None:
    lines = [
        "ValueError: To serve at least one request with the models's max seq len (32768), "
        "(7.00 GiB KV cache is needed, which is larger than the available KV cache memory "
        "(2.47 GiB). Based on the available memory, the estimated maximum model length is "
        "11568. Try increasing `gpu_memory_utilization` or decreasing `max_model_len`",
        "RuntimeError: Engine core initialization failed. See root cause above.",
    ]
    (finding,) = diagnose(lines)
    assert finding.rule == "max-model-len"
    assert finding.fix is not None
    assert (finding.fix.field, finding.fix.value) == ("max_model_len", 11568)
    assert "11568" in finding.hint


def test_free_memory_suggests_a_utilization_that_fits() -> None:
    line = (
        "ValueError: Free memory on device cuda:0 (3.1/23.55 GiB) on startup is less than "
        "desired GPU memory utilization (0.9, 21.2 GiB). Decrease GPU memory utilization"
    )
    (finding,) = diagnose([line])
    assert finding.rule == "free-memory" and finding.fix is not None
    assert finding.fix.field == "gpu_memory_utilization"
    assert 0 < float(str(finding.fix.value)) < 3.1 / 23.55


def test_each_known_failure() -> None:
    cases = {
        "oom": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.",
        "no-kv-blocks": "ValueError: No available memory for the cache blocks. Try increasing",
        "max-len-too-long": "User-specified max_model_len (40000) is greater than the derived "
        "max_model_len (max_position_embeddings=32768)",
        "inductor": "AssertionError: duplicate template name",
        "hub-unreachable": "OSError: We couldn't connect to 'https://huggingface.co' to load",
        "port-in-use": "OSError: [Errno 98] Address already in use",
    }
    for rule, line in cases.items():
        assert [f.rule for f in diagnose(["noise", line, "more noise"])] == [rule], rule


def test_clean_shutdown_noise_is_not_a_finding() -> None:
    lines = [
        "(APIServer pid=1) ERROR 11-26 11:06:12 [async_llm.py:1] AsyncLLM output_handler "
        "failed. EngineDeadError: EngineCore encountered an issue.",
        "resource_tracker: There appear to be 1 leaked semaphore objects to clean up",
    ]
    assert diagnose(lines) == []


def test_findings_in_log_order() -> None:
    lines = ["[Errno 98] Address already in use", "x", "torch.OutOfMemoryError: CUDA out"]
    assert [f.rule for f in diagnose(lines)] == ["port-in-use", "oom"]


def test_implausible_figures_give_the_finding_without_a_fix() -> None:
    long_len = "max seq len (5), estimated maximum model length is " + "9" * 400
    cases = [
        "max seq len (5) ... estimated maximum model length is ,",
        long_len,
        "max seq len (" + "1" * 1000 + ") estimated maximum model length is 11568",
        "Free memory on device cuda:0 (1.2.3/4 GiB) on startup is less than desired GPU memory "
        "utilization",
        "Free memory on device cuda:0 (9/4 GiB) on startup is less than desired GPU memory "
        "utilization",
    ]
    for line in cases:
        (finding,) = diagnose([line])
        assert len(finding.cause) < 200, finding.cause
        assert finding.fix is None or finding.fix.value == 11568, line


def test_a_hostile_log_is_diagnosed_quickly() -> None:
    """A bare `.*?` between two phrases rescanned the rest of the log from every start of the
    first one: a 100 KB line of "max seq len (1)" took 35 s."""
    for piece in ("max seq len (1)", "max seq len (1) estimated maximum model length "):
        line = (piece * (100_000 // len(piece) + 1))[:100_000]
        began = time.monotonic()
        assert diagnose([line] * 500) == []
        assert time.monotonic() - began < 2.0
