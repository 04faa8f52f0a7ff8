"""Will it fit: estimates from real architectures' config.json against published figures.

Published figures: parameter counts from the model cards / safetensors index metadata, and the
weights' memory vLLM reports at load ("Loading model weights took ... GB", in GiB). Qwen2.5-7B
in bf16: 7.6 B parameters, ~14.2 GiB, 56 KiB of KV cache per token (28 x 4 x 128 x 2 x 2).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from vllm_console.core.catalog.entry import Format, ModelEntry, Source
from vllm_console.core.catalog.meta import FIELD_NAMES
from vllm_console.core.catalog.readers.config import config_info
from vllm_console.core.gpu.fit import (
    BLOCK,
    Verdict,
    check_fit,
    estimate,
    kv_bytes_per_token,
    params_from_config,
    quant_bits,
    visible_gpus,
    will_it_fit,
)
from vllm_console.core.gpu.nvml import GpuBrief, GpuSample
from vllm_console.core.serve.spec import LaunchSpec

CONFIGS = Path(__file__).parent / "configs"
GiB = 1 << 30
KiB = 1 << 10
SPEC = LaunchSpec(model="m")


def entry_for(name: str, **changes: Any) -> ModelEntry:
    """An entry as the catalog builds it from a config.json (no safetensors: params None).
    `changes`: the entry's own fields (format=...) and its metadata's (params=...)."""
    path = CONFIGS / f"{name}.json"
    config = json.loads(path.read_text())
    meta_changes = {key: changes.pop(key) for key in FIELD_NAMES if key in changes}
    entry = ModelEntry(
        id=name,
        path=path.parent,
        source=Source.FOLDER,
        root=path.parent,
        format=Format.SAFETENSORS,
        meta=replace(config_info(config), **meta_changes),
        detailed=True,
        config=config,
    )
    return replace(entry, **changes)


def gpu(total_gib: float, used_gib: float = 0.5, index: int = 0) -> GpuBrief:
    return GpuBrief(index, "GPU", int(total_gib * GiB), int(used_gib * GiB))


def close(value: float, published: float, within: float = 0.10) -> bool:
    return abs(value - published) <= within * published


# name, published parameters, published weights (GiB) as vLLM reports them, KV bytes per token
PUBLISHED = [
    ("qwen2.5-7b-instruct", 7.62e9, 14.2, 28 * 4 * 128 * 2 * 2),
    ("llama-3.1-8b-instruct", 8.03e9, 14.99, 32 * 8 * 128 * 2 * 2),
    ("mistral-7b-instruct-v0.3", 7.25e9, 13.5, 32 * 8 * 128 * 2 * 2),
    ("qwen3-30b-a3b", 30.5e9, 56.9, 48 * 4 * 128 * 2 * 2),
    ("deepseek-v2-lite", 15.7e9, 29.3, 27 * (512 + 64) * 2),
    ("qwen2.5-7b-instruct-awq", 7.62e9, 5.2, 28 * 4 * 128 * 2 * 2),
]


@pytest.mark.parametrize(("name", "params", "weights_gib", "kv"), PUBLISHED)
def test_estimate_matches_published_figures(
    name: str, params: float, weights_gib: float, kv: int
) -> None:
    est = estimate(entry_for(name), SPEC)
    assert est.params is not None and close(est.params, params)
    assert est.weights_bytes is not None and close(est.weights_bytes / GiB, weights_gib)
    assert est.kv_bytes_per_token == kv


def test_qwen25_7b_figures_from_the_issue() -> None:
    est = estimate(entry_for("qwen2.5-7b-instruct"), SPEC)
    assert est.params == 7_615_616_512  # the safetensors index's total_parameters, exactly
    assert est.kv_bytes_per_token == 56 * KiB
    assert est.weights_bytes is not None and abs(est.weights_bytes / GiB - 14.2) < 0.1
    assert est.params_from == "config.json"
    assert any("estimated from config.json" in n for n in est.notes)
    assert est.max_model_len == 32768


def test_safetensors_params_win_when_known() -> None:
    est = estimate(entry_for("qwen2.5-7b-instruct", params=7_615_616_512), SPEC)
    assert est.params_from == "safetensors" and est.notes == ()
    assert est.weights_bytes == 7_615_616_512 * 2


def test_awq_weights_are_counted_as_stored() -> None:
    # the catalog gives the logical parameters and the bytes of the files vLLM loads (the two
    # shards of Qwen2.5-7B-Instruct-AWQ: about 5.6 GB)
    entry = entry_for("qwen2.5-7b-instruct-awq", params=7_615_616_512, stored_bytes=5_583_130_920)
    assert entry.meta.quantization == "AWQ 4-bit"
    est = estimate(entry, SPEC)
    assert est.params_from == "safetensors" and est.params == 7_615_616_512
    assert est.weights_bytes == 5_583_130_920 and close(est.weights_bytes / GiB, 5.2)
    assert any("as stored" in n for n in est.notes)


def test_awq_without_headers_is_estimated_from_config() -> None:
    est = estimate(entry_for("qwen2.5-7b-instruct-awq"), SPEC)
    assert est.params_from == "config.json" and est.params == 7_615_616_512
    assert est.weights_bytes is not None and close(est.weights_bytes / GiB, 5.2)
    assert any("4-bit" in n for n in est.notes)


def test_bin_only_model_is_estimated_from_config() -> None:
    est = estimate(entry_for("mistral-7b-instruct-v0.3", format=Format.BIN), SPEC)
    assert est.params == 7_248_023_552 and "no safetensors headers" in est.notes[0]


def test_multimodal_text_config_is_used() -> None:
    entry = entry_for("mistral-small-3.1-24b-instruct")
    assert entry.meta.num_layers == 40 and entry.meta.num_kv_heads == 8
    est = estimate(entry, SPEC)
    assert est.kv_bytes_per_token == 40 * 8 * 128 * 2 * 2
    assert est.params is not None and close(est.params, 24.0e9)
    assert any("encoders are not counted" in n for n in est.notes)
    with_vision = estimate(replace(entry, meta=replace(entry.meta, params=24_011_361_280)), SPEC)
    assert any("vision encoder" in n for n in with_vision.notes)


def test_moe_counts_every_expert_and_mla_caches_a_latent() -> None:
    total, embed = params_from_config(entry_for("qwen3-30b-a3b").config) or (0, 0)
    assert close(total, 30.5e9, 0.01) and embed == 2 * 151936 * 2048
    ds = entry_for("deepseek-v2-lite")
    whole, per_gpu = kv_bytes_per_token(ds, 2, tp=4)
    assert whole == per_gpu == 27 * 576 * 2  # MLA's cache is not split over TP ranks


def test_kv_cache_dtype_and_tensor_parallel() -> None:
    entry = entry_for("qwen2.5-7b-instruct")
    assert estimate(entry, replace(SPEC, kv_cache_dtype="fp8")).kv_bytes_per_token == 28 * KiB
    tp2 = estimate(entry, replace(SPEC, tensor_parallel_size=2))
    assert tp2.kv_per_token_per_gpu == 28 * KiB and tp2.gpus_needed == 2
    assert tp2.weights_per_gpu is not None and tp2.weights_bytes is not None
    assert abs(tp2.weights_per_gpu * 2 - tp2.weights_bytes) <= 2
    tp8 = estimate(entry, replace(SPEC, tensor_parallel_size=8))  # 4 KV heads: replicated
    assert tp8.kv_per_token_per_gpu == 28 * 1 * 128 * 2 * 2


def test_online_fp8_and_float32() -> None:
    entry = entry_for("qwen2.5-7b-instruct")
    fp8 = estimate(entry, replace(SPEC, quantization="fp8"))
    assert fp8.weights_bytes is not None and close(fp8.weights_bytes / GiB, 8.1, 0.03)
    f32 = estimate(entry, replace(SPEC, dtype="float32"))
    assert f32.weights_bytes == 7_615_616_512 * 4 and f32.kv_bytes_per_token == 112 * KiB


@pytest.mark.parametrize(
    ("label", "bits"),
    [("AWQ 4-bit", 4), ("GPTQ 8-bit", 8), ("FP8", 8), ("compressed-tensors FP8", 8),
     ("W4A16", 4), ("MXFP4", 4), ("bitsandbytes 4-bit", 4), ("fp8", 8), (None, None),
     ("compressed-tensors", None)],
)  # fmt: skip
def test_quant_bits(label: str | None, bits: int | None) -> None:
    assert quant_bits(label) == bits


def test_unknown_quantization_is_said() -> None:
    entry = entry_for("qwen2.5-7b-instruct", quantization="compressed-tensors")
    est = estimate(entry, SPEC)
    assert any("unknown quantization" in n for n in est.notes)


def test_gguf_weights_are_the_file_size() -> None:
    entry = entry_for("qwen2.5-7b-instruct", format=Format.GGUF, size_bytes=4_683_073_920)
    est = estimate(entry, SPEC)
    assert est.weights_bytes == 4_683_073_920 and est.params_from == "GGUF"


def test_too_little_known_is_unknown_not_a_crash() -> None:
    entry = ModelEntry(id="x", path=Path("/x"), source=Source.FOLDER, root=Path("/"))
    fit = will_it_fit(entry, SPEC, [gpu(24)])
    assert fit.verdict is Verdict.UNKNOWN and fit.estimate.weights_bytes is None


# -- verdicts --------------------------------------------------------------------------------


def test_qwen_7b_fits_a_24_gib_gpu() -> None:
    fit = will_it_fit(entry_for("qwen2.5-7b-instruct"), SPEC, [gpu(24)])
    assert fit.verdict is Verdict.FITS, fit.reason
    assert fit.max_model_len == 32768 and fit.utilization_needed is not None
    assert 0.6 < fit.utilization_needed < 0.9
    assert fit.short() == "fits" and fit.lines()[0].startswith("fits: ")


def test_qwen_7b_does_not_fit_a_16_gib_gpu() -> None:
    fit = will_it_fit(entry_for("qwen2.5-7b-instruct"), SPEC, [gpu(15.6)])
    assert fit.verdict is Verdict.WONT_FIT and "weights 14.2 GiB" in fit.reason
    assert fit.max_model_len is None
    assert fit.utilization_needed is not None and fit.utilization_needed > 0.9


def test_llama_full_context_needs_more_than_24_gib() -> None:
    entry = entry_for("llama-3.1-8b-instruct")
    fit = will_it_fit(entry, SPEC, [gpu(24)])
    assert fit.verdict is Verdict.WONT_FIT and "131,072 tokens" in fit.reason
    assert fit.max_model_len is not None and 30_000 < fit.max_model_len < 45_000
    assert fit.max_model_len % BLOCK == 0
    assert any("more than the whole GPU" in line for line in fit.lines())
    shorter = will_it_fit(entry, replace(SPEC, max_model_len=fit.max_model_len), [gpu(24)])
    assert shorter.verdict in (Verdict.FITS, Verdict.TIGHT)
    longer = will_it_fit(entry, replace(SPEC, max_model_len=fit.max_model_len + BLOCK), [gpu(24)])
    assert longer.verdict is Verdict.WONT_FIT


def test_the_utilization_it_needs_is_enough() -> None:
    entry = entry_for("qwen2.5-7b-instruct")
    spec = replace(SPEC, gpu_memory_utilization=0.7)
    fit = will_it_fit(entry, spec, [gpu(24)])
    assert fit.verdict is Verdict.WONT_FIT and "would do" in fit.reason
    assert fit.utilization_needed is not None and 0.7 < fit.utilization_needed < 0.8
    needed = replace(spec, gpu_memory_utilization=fit.utilization_needed)
    assert will_it_fit(entry, needed, [gpu(24)]).verdict is not Verdict.WONT_FIT


def test_utilization_above_free_memory_will_not_start() -> None:
    # another process holds 20 GiB: 0.9 x 80 GiB is more than is free, 0.7 would start
    fit = will_it_fit(entry_for("qwen2.5-7b-instruct"), SPEC, [gpu(80, used_gib=20)])
    assert fit.verdict is Verdict.WONT_FIT and "asks for" in fit.reason and "would do" in fit.reason
    assert fit.max_model_len == 32768  # at the highest utilization that can start


def test_tight_when_little_is_left() -> None:
    spec = replace(SPEC, max_model_len=16384, gpu_memory_utilization=0.75)
    fit = will_it_fit(entry_for("qwen2.5-7b-instruct"), spec, [gpu(24)])
    assert fit.verdict is Verdict.TIGHT, fit.reason


def test_no_gpu_is_an_answer() -> None:
    fit = will_it_fit(entry_for("qwen2.5-7b-instruct"), SPEC, [])
    assert fit.verdict is Verdict.NO_GPU and "CPU" in fit.reason
    assert fit.estimate.weights_bytes is not None  # the estimate itself still stands


def test_tensor_parallel_needs_enough_gpus_and_uses_the_tightest() -> None:
    entry = entry_for("qwen3-30b-a3b")
    spec = replace(SPEC, tensor_parallel_size=2)
    assert will_it_fit(entry, spec, [gpu(48)]).verdict is Verdict.WONT_FIT
    fit = will_it_fit(entry, spec, [gpu(48, index=0), gpu(48, used_gib=40, index=1)])
    assert fit.verdict is Verdict.WONT_FIT and fit.gpus == (0, 1)
    ok = will_it_fit(entry, spec, [gpu(48, index=2), gpu(48, index=3)])
    assert ok.verdict in (Verdict.FITS, Verdict.TIGHT) and ok.gpus == (2, 3)


def test_gpu_samples_work_and_missing_memory_is_unknown() -> None:
    est = estimate(entry_for("qwen2.5-7b-instruct"), SPEC)
    sample = GpuSample(0, "H100", memory_total=80 * GiB, memory_used=GiB, memory_free=79 * GiB)
    assert check_fit(est, [sample], 0.9).verdict is Verdict.FITS
    blind = GpuSample(0, "H100")
    assert check_fit(est, [blind], 0.9).verdict is Verdict.UNKNOWN


def test_enforce_eager_lowers_the_margin() -> None:
    entry = entry_for("qwen2.5-7b-instruct")
    eager = estimate(entry, replace(SPEC, enforce_eager=True)).margin_per_gpu
    assert estimate(entry, SPEC).margin_per_gpu - eager == GiB // 2


def test_cuda_visible_devices_choose_the_gpus() -> None:
    gpus = [GpuSample(i, "H100", f"GPU-{i}aaa", 80 * GiB, GiB, 79 * GiB) for i in range(4)]
    assert visible_gpus(gpus, None) == gpus
    assert [g.index for g in visible_gpus(gpus, "2,0")] == [2, 0]
    assert [g.index for g in visible_gpus(gpus, "GPU-3,1")] == [3, 1]
    assert [g.index for g in visible_gpus(gpus, "1,7,2")] == [1]  # CUDA stops at a bad entry
    assert visible_gpus(gpus, "") == [] and visible_gpus(gpus, "-1") == []
    fit = will_it_fit(entry_for("qwen2.5-7b-instruct"), SPEC, visible_gpus(gpus, "-1"))
    assert fit.verdict is Verdict.NO_GPU


def test_no_room_for_the_kv_cache_is_said_without_a_negative_size() -> None:
    spec = replace(SPEC, gpu_memory_utilization=0.5)
    fit = will_it_fit(entry_for("qwen2.5-7b-instruct"), spec, [gpu(24, used_gib=2)])
    assert fit.verdict is Verdict.WONT_FIT
    assert fit.reason.startswith("at utilization 0.50 (12.0 GiB) weights 14.")
    assert "leave no KV cache; utilization 0.7" in fit.reason and "-" not in fit.reason


def test_a_family_not_understood_says_so() -> None:
    # Jamba's config (ai21labs/Jamba-v0.1): attention every 8th layer, Mamba in the others
    config = {
        "architectures": ["JambaForCausalLM"],
        "model_type": "jamba",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "attn_layer_period": 8,
        "attn_layer_offset": 4,
        "mamba_d_state": 16,
        "vocab_size": 65536,
        "max_position_embeddings": 262144,
    }
    entry = replace(entry_for("llama-3.1-8b-instruct"), config=config)
    entry = replace(entry, meta=config_info(config))
    fit = will_it_fit(entry, SPEC, [gpu(80)])
    assert fit.verdict is Verdict.UNKNOWN and "Mamba" in fit.reason
    assert fit.max_model_len is None


@pytest.mark.parametrize(
    ("changes", "sliding"),
    [
        ({"sliding_window": 4096}, 32),  # Mistral v0.1: every layer
        ({"sliding_window": 131072, "use_sliding_window": False}, 0),  # Qwen2: switched off
        ({"sliding_window": 0}, 0),  # vLLM: 0 is no window
        ({"sliding_window": 4096, "layer_types": ["full_attention"] * 32}, 0),
    ],
)
def test_which_layers_slide(changes: dict[str, object], sliding: int) -> None:
    entry = entry_for("llama-3.1-8b-instruct")
    entry = replace(entry, config={**entry.config, **changes})
    est = estimate(entry, SPEC)
    per_layer = 8 * 128 * 2 * 2
    assert est.kv_bytes_per_token == (32 - sliding) * per_layer
    assert est.kv_windows_per_gpu == (((4096, sliding * per_layer),) if sliding else ())
