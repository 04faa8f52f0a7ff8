"""config.json, safetensors and GGUF readers on real-shaped inputs and on garbage."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from tests.fakes.cachegen import (
    GEMMA3_4B_MULTIMODAL,
    LLAMA31_8B_FP8,
    QWEN25_7B,
    QWEN25_7B_AWQ,
    QWEN25_7B_GPTQ_INT8,
    Typed,
    count_params,
    gguf_bytes,
    llama_gguf_metadata,
    llama_gguf_tensors,
    llama_tensors,
    safetensors_bytes,
)

from vllm_console.core.catalog.readers.config import config_info, quantization_from_name
from vllm_console.core.catalog.readers.gguf import quant_from_name, read_gguf, shard_stem
from vllm_console.core.catalog.readers.safetensors import read_safetensors_header


def test_qwen25_7b_instruct() -> None:
    info = config_info(QWEN25_7B)
    assert info.architecture == "Qwen2ForCausalLM" and info.model_type == "qwen2"
    assert info.dtype == "bfloat16" and info.quantization is None
    assert info.context_length == 32768 and info.num_layers == 28
    assert info.num_kv_heads == 4 and info.head_dim == 128


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (QWEN25_7B_AWQ, "AWQ 4-bit"),
        (QWEN25_7B_GPTQ_INT8, "GPTQ 8-bit"),
        (LLAMA31_8B_FP8, "FP8"),
        ({"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}},
         "bitsandbytes 4-bit"),
        ({"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {
            "group_0": {"weights": {"num_bits": 8, "type": "float"}}}}},
         "compressed-tensors FP8"),
        ({"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {
            "group_0": {"weights": {"num_bits": 4, "type": "int"}}}}},
         "compressed-tensors 4-bit"),
        ({"quantization_config": {"quant_method": "mxfp4"}}, "MXFP4"),
    ],
)  # fmt: skip
def test_quantization_config(config: dict[str, object], expected: str) -> None:
    assert config_info(config).quantization == expected


def test_fp8_llama_context_keeps_llama3_rope() -> None:
    info = config_info(LLAMA31_8B_FP8)
    assert info.context_length == 131072 and info.dtype == "bfloat16"
    assert info.num_kv_heads == 8 and info.head_dim == 128


def test_multimodal_text_config() -> None:
    info = config_info(GEMMA3_4B_MULTIMODAL)
    assert info.architecture == "Gemma3ForConditionalGeneration"
    assert info.model_type == "gemma3" and info.dtype == "bfloat16"
    # linear rope scaling multiplies the context, as vLLM does
    assert info.context_length == 131072 * 8
    assert info.num_layers == 34 and info.num_kv_heads == 4 and info.head_dim == 256


def test_alternate_keys_and_yarn() -> None:
    gpt2 = {"n_positions": 1024, "n_layer": 12, "n_head": 12, "n_embd": 768, "dtype": "float32"}
    info = config_info(gpt2)
    assert (info.context_length, info.num_layers, info.num_kv_heads, info.head_dim) == (
        1024, 12, 12, 64,
    )  # fmt: skip
    assert info.dtype == "float32"
    yarn = {"max_position_embeddings": 32768, "rope_scaling": {
        "type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}  # fmt: skip
    assert config_info(yarn).context_length == 131072
    assert config_info({"max_position_embeddings": "lots"}).context_length is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Qwen/Qwen2.5-7B-Instruct-AWQ", "AWQ"),
        ("TheBloke/Llama-2-7B-GPTQ", "GPTQ"),
        ("neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8", "FP8"),
        ("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4", "GPTQ"),
        ("x/model-int8", "INT8"),
        ("unsloth/llama-3-8b-bnb-4bit", "bitsandbytes 4-bit"),
        ("Qwen/Qwen2.5-7B-Instruct", None),
        ("org/awqward", None),
    ],
)
def test_quantization_from_name(name: str, expected: str | None) -> None:
    assert quantization_from_name(name) == expected


def test_safetensors_header(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    tensors = llama_tensors()
    path.write_bytes(safetensors_bytes(tensors, {"format": "pt"}))
    header, why = read_safetensors_header(str(path))
    assert why is None and header is not None
    assert header.params == count_params(tensors)
    assert header.dtype_counts[0][0] == "BF16"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "file shorter than its 8-byte header length"),
        (struct.pack("<Q", 1 << 40), "implausible"),
        (struct.pack("<Q", 100) + b"{}", "header truncated"),
        (struct.pack("<Q", 4) + b"{{{{", "not valid JSON"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
        (struct.pack("<Q", 15) + b'{"a": {"x": 1}}', "has no shape"),
    ],
)
def test_safetensors_garbage(tmp_path: Path, raw: bytes, reason: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(raw)
    header, why = read_safetensors_header(str(path))
    assert header is None and why is not None and reason in why


def test_gguf_header(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    metadata = {**llama_gguf_metadata(), "x.i64": Typed(11, -5), "x.nested": [[1, 2], [3]]}
    path.write_bytes(gguf_bytes(metadata, llama_gguf_tensors()))
    info, why = read_gguf(str(path))
    assert why is None and info is not None
    assert info.version == 3 and info.architecture == "llama"
    assert info.arch_int("context_length") == 4096 and info.file_type == "Q4_K_M"
    assert info.metadata["x.i64"] == -5 and info.metadata["x.nested"] == [[1, 2], [3]]
    assert "tokenizer.ggml.tokens" not in info.metadata  # long arrays are skipped, not kept
    assert info.tensor_count == len(llama_gguf_tensors())
    assert info.tensor_types[0][0] == "Q4_K"


def test_gguf_version_2(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes(llama_gguf_metadata(), llama_gguf_tensors(), version=2))
    info, _ = read_gguf(str(path))
    assert info is not None and info.version == 2 and info.params > 0


@pytest.mark.parametrize("cut", [10, 30, 100, 2000, -1])
def test_gguf_truncated_never_raises(tmp_path: Path, cut: int) -> None:
    raw = gguf_bytes(llama_gguf_metadata(), llama_gguf_tensors())
    path = tmp_path / "m.gguf"
    path.write_bytes(raw[:cut])
    info, why = read_gguf(str(path))
    assert info is None and why


@pytest.mark.parametrize(
    "raw",
    [
        b"GGML" + b"\x00" * 40,
        b"GGUF" + struct.pack("<I", 9) + b"\x00" * 40,
        b"GGUF" + struct.pack("<IQQ", 3, 1 << 60, 1) + b"\x00" * 40,
        b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 1 << 62) + b"\x00" * 40,
        b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k"
        + struct.pack("<IIQ", 9, 8, 1 << 50) + b"\x00" * 40,
        b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k"
        + struct.pack("<I", 77) + b"\x00" * 40,
        b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", 1) + b"t"
        + struct.pack("<I", 1000) + b"\x00" * 40,
    ],
)  # fmt: skip
def test_gguf_garbage_never_raises(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(raw)
    info, why = read_gguf(str(path))
    assert info is None and why


def test_gguf_names() -> None:
    assert quant_from_name("qwen2.5-7b-instruct-q4_k_m.gguf") == "Q4_K_M"
    assert quant_from_name("Llama-3.2-1B-Instruct-IQ4_XS.gguf") == "IQ4_XS"
    assert quant_from_name("model.Q8_0.gguf") == "Q8_0"
    assert quant_from_name("model-BF16-00001-of-00002.gguf") == "BF16"
    assert quant_from_name("Qwen3-8B-UD-Q4_K_XL.gguf") == "Q4_K_XL"
    assert quant_from_name("model.gguf") is None
    assert shard_stem("x-Q4_K_M-00002-of-00003.gguf") == ("x-Q4_K_M", 2, 3)
    assert shard_stem("x.gguf") is None
