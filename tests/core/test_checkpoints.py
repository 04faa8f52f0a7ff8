"""The catalog and the fit on weightless copies of published checkpoints (`tests/checkpoints`).

Expected values do not come from the catalog:

- parameters: the model cards (Llama-3.1-8B 8.03 B, Mistral-7B-v0.3 7.25 B, Mixtral-8x7B
  46.7 B, DeepSeek-V2-Lite 15.7 B, gpt-oss-20b 20.9 B, gemma-2-9b 9.24 B, Phi-3-mini 3.82 B,
  Qwen2.5-7B 7.62 B, Qwen3-8B 8.19 B); quantized copies have their base model's count;
- the weight files and the dtype: vLLM 0.32's own code, run once on these folders (CPU
  build, offline): `DefaultModelLoader(LoadConfig(load_format="auto"))._prepare_weights(
  folder, None, None, True, None)` for the files, and
  `ModelArchConfigConvertorBase.get_torch_dtype(get_config(folder), ...)` for the config's
  dtype, which `--dtype auto` keeps on a GPU with bfloat16 unless it is float32 (then
  bfloat16: `_resolve_auto_dtype`);
- the KV cache: vLLM's `FullAttentionSpec`/`SlidingWindowSpec` (block 16, bfloat16) for each
  layer as its model code assigns them (gpt-oss and gemma-2: even layers slide; Phi-3: no
  `layer_types`, so every layer takes the config's window), then
  `max_memory_usage_bytes` at the full context and `estimate_max_model_len` for 1, 2 and
  4 GiB of KV cache, with `max_in_flight_tokens` 4096 (2 x 2048: a GPU under 70 GiB) and
  16384 (2 x 8192: 70 GiB and more).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from tests.fakes import checkpoints

from vllm_console.core.catalog import scan
from vllm_console.core.catalog.entry import Format, ModelEntry
from vllm_console.core.gpu.fit import GiB, estimate
from vllm_console.core.gpu.verdict import kv_bytes, longest_fitting
from vllm_console.core.serve.spec import LaunchSpec

SPEC = LaunchSpec(model="m")


def _shards(total: int, first: int = 1, width: int = 5) -> list[str]:
    return [
        f"model-{i:05d}-of-{total - 1 + first:0{width}d}.safetensors"
        for i in range(first, total + first)
    ]


# name: (parameters by the model card, vLLM's dtype, quantization label, vLLM's weight files)
TRUTH: dict[str, tuple[float, str | None, str | None, list[str]]] = {
    "llama-3.1-8b-instruct": (8.03e9, "bfloat16", None, _shards(4)),
    "mixtral-8x7b-instruct-v0.1": (46.7e9, "bfloat16", None, _shards(19)),
    "deepseek-v2-lite": (15.7e9, "bfloat16", None, _shards(4, width=6)),
    "gpt-oss-20b": (20.9e9, "bfloat16", "MXFP4", _shards(3, first=0)),
    "gemma-2-9b-it": (9.24e9, "bfloat16", None, _shards(4)),
    "phi-3-mini-4k-instruct": (3.82e9, "bfloat16", None, _shards(2)),
    "qwen2.5-7b-instruct-awq": (7.62e9, "float16", "AWQ 4-bit", _shards(2)),
    "llama-3.1-8b-instruct-gptq-int4": (8.03e9, "float16", "GPTQ 4-bit", _shards(2)),
    "qwen3-8b-fp8": (8.19e9, "bfloat16", "FP8", _shards(2)),
    "mistral-7b-instruct-v0.3": (7.25e9, "bfloat16", None, ["consolidated.safetensors"]),
}

# name: (vLLM's KV bytes for one sequence of the full context, in flight 4096 and 16384;
#        vLLM's estimate_max_model_len for 1, 2, 4 GiB at 4096 and at 16384 in flight)
KV_TRUTH = {
    "gpt-oss-20b": ((3325427712, 3627417600), ((39440, 83136, 131072), (27152, 70848, 131072))),
    "gemma-2-9b-it": ((2821324800, 2821324800), ((3104, 6224, 8192), (3104, 6224, 8192))),
    "phi-3-mini-4k-instruct": ((1616904192, 1616904192), ((2704, 4096, 4096), (2704, 4096, 4096))),
}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelEntry]:
    root = tmp_path_factory.mktemp("checkpoints")
    for name in checkpoints.names():
        checkpoints.build(name, root / name)
    scan.clear_memos()
    entries = scan.scan(root / "no-cache", [root]).entries
    return {e.id: e for e in entries}


def test_every_kind_of_checkpoint_is_here() -> None:
    assert set(TRUTH) | {"qwen2.5-7b-instruct-gguf-split"} == set(checkpoints.names())


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_parameters_dtype_and_weight_files(catalog: dict[str, ModelEntry], name: str) -> None:
    params, dtype, quantization, loaded = TRUTH[name]
    entry = catalog[name]
    assert entry.complete, entry.problems
    assert entry.meta.params is not None
    assert abs(entry.meta.params - params) <= 0.005 * params
    assert entry.meta.dtype == dtype and entry.meta.quantization == quantization
    assert list(entry.weight_files) == loaded


def test_consolidated_copy_is_ignored_but_on_disk(catalog: dict[str, ModelEntry]) -> None:
    entry = catalog["mistral-7b-instruct-v0.3"]
    assert entry.meta.params == 7_248_023_552
    assert entry.size_bytes is not None and entry.meta.stored_bytes is not None
    assert round(entry.size_bytes / GiB, 1) == 27.0  # both copies, and the tokenizers
    assert round(entry.meta.stored_bytes / GiB, 1) == 13.5
    ignored = dict(entry.ignored_files)
    assert set(ignored) == {f"model-0000{i}-of-00003.safetensors" for i in range(1, 4)}
    assert all("second copy" in why for why in ignored.values())
    est = estimate(entry, SPEC)
    assert est.weights_bytes is not None and round(est.weights_bytes / GiB, 1) == 13.5


def test_index_weight_map_decides_without_a_consolidated_file(
    catalog: dict[str, ModelEntry], tmp_path: Path
) -> None:
    folder = checkpoints.build("mistral-7b-instruct-v0.3", tmp_path / "mistral")
    (folder / "consolidated.safetensors").rename(folder / "extra.safetensors")
    scan.clear_memos()
    entry = scan.detail(replace(catalog["mistral-7b-instruct-v0.3"], path=folder))
    assert entry.meta.params == 7_248_023_552
    assert dict(entry.ignored_files) == {
        "extra.safetensors": "not in model.safetensors.index.json's weight_map"
    }


def test_subfolder_copies_are_shown_as_ignored(catalog: dict[str, ModelEntry]) -> None:
    ignored = dict(catalog["gpt-oss-20b"].ignored_files)
    assert set(ignored) == {"original/model.safetensors", "metal/model.bin"}
    assert "top folder" in ignored["metal/model.bin"]


@pytest.mark.parametrize(
    ("name", "storage", "stored_gib"),
    [
        ("gpt-oss-20b", "uint8, bfloat16", 12.8),
        ("qwen2.5-7b-instruct-awq", "float16, int32", 5.2),
        ("llama-3.1-8b-instruct-gptq-int4", "float16, int32", 5.3),
        ("qwen3-8b-fp8", "float8_e4m3fn, bfloat16, float32", 8.8),
    ],
)
def test_quantized_storage_beside_logical_parameters(
    catalog: dict[str, ModelEntry], name: str, storage: str, stored_gib: float
) -> None:
    entry = catalog[name]
    assert entry.meta.storage == storage
    assert entry.meta.stored_bytes is not None
    assert round(entry.meta.stored_bytes / GiB, 1) == stored_gib
    est = estimate(entry, SPEC)
    assert est.weights_bytes == entry.meta.stored_bytes  # what vLLM loads, as stored


def test_split_gguf(catalog: dict[str, ModelEntry]) -> None:
    entry = catalog["qwen2.5-7b-instruct-gguf-split"]
    assert entry.format is Format.GGUF and entry.meta.quantization == "Q4_K_M"
    assert entry.meta.params is not None and abs(entry.meta.params - 7.62e9) <= 0.005 * 7.62e9
    assert entry.meta.context_length == 32768
    assert len(entry.weight_files) == 2 and not entry.problems


@pytest.mark.parametrize("name", sorted(KV_TRUTH))
@pytest.mark.parametrize("slot", [0, 1])
def test_kv_cache_like_vllm(catalog: dict[str, ModelEntry], name: str, slot: int) -> None:
    at_context, longest = KV_TRUTH[name]
    in_flight = (4096, 16384)[slot]
    est = estimate(catalog[name], SPEC)
    assert est.kv_unknown is None and est.model_context is not None
    assert kv_bytes(est, est.model_context, in_flight) == at_context[slot]
    for gib, vllm_len in zip((1, 2, 4), longest[slot], strict=True):
        ours = longest_fitting(est, gib * GiB, in_flight)
        assert vllm_len - 16 < ours <= vllm_len  # ours counts whole blocks of 16


def test_gpt_oss_sliding_layers_halve_the_kv_cache(catalog: dict[str, ModelEntry]) -> None:
    est = estimate(catalog["gpt-oss-20b"], SPEC)
    assert est.kv_bytes_per_token == 12 * 8 * 64 * 2 * 2  # the 12 full-attention layers
    assert est.kv_windows_per_gpu == ((128, 12 * 8 * 64 * 2 * 2),)
    at_131k = kv_bytes(est, 131072, 4096) / GiB
    assert 3.0 < at_131k < 3.2  # not the 6.0 GiB of every layer at full length
    assert any("sliding-window" in n for n in est.notes)


def test_mla_and_moe(catalog: dict[str, ModelEntry]) -> None:
    ds = estimate(catalog["deepseek-v2-lite"], SPEC)
    assert ds.kv_bytes_per_token == 27 * (512 + 64) * 2 and ds.kv_windows_per_gpu == ()
    mixtral = estimate(catalog["mixtral-8x7b-instruct-v0.1"], SPEC)
    assert mixtral.kv_bytes_per_token == 32 * 8 * 128 * 2 * 2
    assert mixtral.weights_bytes == 46_702_792_704 * 2
