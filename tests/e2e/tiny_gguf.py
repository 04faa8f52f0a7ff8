"""Convert the tiny test Llama (safetensors, bfloat16) to GGUF with the `gguf` package's writer.

What llama.cpp's converter does for a Llama, cut to what the tiny model has: tensor names
mapped by `gguf.get_tensor_name_map`, the query and key weights permuted for GGUF's rotary
layout, the hyperparameters and `general.file_type` written, and the tokenizer's vocabulary
and merges kept (a byte-level BPE: GGUF's "gpt2" tokenizer model). Norms stay float32, as
llama.cpp keeps them; the other weights are F16 or quantized to Q8_0.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import gguf
import numpy as np

FILE_TYPES = {"F16": gguf.LlamaFileType.MOSTLY_F16, "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}


def read_safetensors(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    """Every tensor of a safetensors file as float32 (bfloat16 widened bit by bit)."""
    raw = path.read_bytes()
    (length,) = struct.unpack_from("<Q", raw, 0)
    header = json.loads(raw[8 : 8 + length])
    data = memoryview(raw)[8 + length :]
    tensors: dict[str, np.ndarray[Any, Any]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        chunk = data[start:end]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(chunk, dtype=np.uint16).astype(np.uint32) << 16
            values = bits.view(np.float32)
        elif info["dtype"] == "F32":
            values = np.frombuffer(chunk, dtype=np.float32)
        else:
            raise ValueError(f"{name}: dtype {info['dtype']} not handled")
        tensors[name] = values.reshape(info["shape"])
    return tensors


def _permute(w: np.ndarray[Any, Any], heads: int) -> np.ndarray[Any, Any]:
    """llama.cpp's reordering of a query or key projection's rows for its rotary layout."""
    return (
        w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    )


def convert(model_dir: Path, out: Path, quant: str = "F16", name: str = "tiny-llama") -> Path:
    """Write `model_dir` (the tiny Llama) as one GGUF file of type `quant` (F16 or Q8_0)."""
    config = json.loads((model_dir / "config.json").read_text())
    tensors = read_safetensors(model_dir / "model.safetensors")
    layers, heads = config["num_hidden_layers"], config["num_attention_heads"]
    kv_heads = config["num_key_value_heads"]
    arch = gguf.MODEL_ARCH.LLAMA
    names = gguf.get_tensor_name_map(arch, layers)
    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name(name)
    writer.add_basename(name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(layers)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(config["hidden_size"] // heads)
    writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(FILE_TYPES[quant])
    _add_tokenizer(writer, model_dir, config)
    for hf_name, weights in sorted(tensors.items()):
        base = hf_name.removesuffix(".weight")
        mapped = names.get_name(base)
        if mapped is None:
            raise ValueError(f"no GGUF name for {hf_name}")
        if base.endswith("q_proj"):
            weights = _permute(weights, heads)
        elif base.endswith("k_proj"):
            weights = _permute(weights, kv_heads)
        if weights.ndim == 1:  # norms stay float32
            writer.add_tensor(mapped + ".weight", weights.astype(np.float32))
        elif quant == "Q8_0":
            kind = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(mapped + ".weight", gguf.quantize(weights, kind), raw_dtype=kind)
        else:
            writer.add_tensor(mapped + ".weight", weights.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _add_tokenizer(writer: gguf.GGUFWriter, model_dir: Path, config: dict[str, Any]) -> None:
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    vocab: dict[str, int] = tok["model"]["vocab"]
    for added in tok.get("added_tokens", []):
        vocab.setdefault(added["content"], added["id"])
    ordered = sorted(vocab.items(), key=lambda kv: kv[1])
    specials = {added["id"] for added in tok.get("added_tokens", [])}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([token for token, _ in ordered])
    writer.add_token_types(
        [gguf.TokenType.CONTROL if i in specials else gguf.TokenType.NORMAL for _, i in ordered]
    )
    writer.add_token_merges(merges)
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])
    writer.add_pad_token_id(config["pad_token_id"])
    template = model_dir / "chat_template.jinja"
    if template.exists():
        writer.add_chat_template(template.read_text())
