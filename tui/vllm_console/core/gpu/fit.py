"""Will it fit: the weights and the KV cache per token against the free memory of the GPUs.

An estimate, stated with its assumptions (each result carries them as notes):

- Weights: parameters x bytes of the dtype vLLM loads (16-bit unless float32 is asked for;
  vLLM's "auto" loads float32 checkpoints in 16-bit). The parameters are the catalog's (the
  logical count of the weight files vLLM loads, packed AWQ/GPTQ/MXFP4 words unpacked), else
  derived from config.json (`params_from_config`: a model without safetensors headers). A
  quantized checkpoint's weights are the bytes of those files, as stored; without them (or
  quantized online) its linear layers take bits/8 bytes per weight plus group scales (4-bit:
  ~0.52 byte, FP8/INT8: 1 byte) and embeddings and the LM head stay 16-bit.
- KV cache: per layer KV heads x head size x 2 (K and V) x bytes of the KV cache dtype per
  token, MLA models (DeepSeek) kv_lora_rank + rope dims; sliding-window layers hold only
  their window plus the tokens in flight, and a family with Mamba or linear-attention
  layers is not estimated (`kvcache`).
- vLLM's own use per GPU (the margin): non-torch memory 0.5 GiB, CUDA graphs 0.5 GiB (none with
  enforce eager), and the activation peak of one batch of 8,192 tokens plus the sampler's logits.

vLLM takes total x gpu_memory_utilization on each GPU, refuses to start when that is more than
the free memory, and its KV cache (the budget less weights and margin) must hold one sequence of
max model length (`verdict.kv_bytes`).

This module is the model's side (parameters, weights, KV cache per token, margin: `estimate`)
and the entry point (`will_it_fit`); holding an estimate against the GPUs' memory, and what
the answer looks like (`Fit`, `Verdict`), is `verdict.py`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from vllm_console.core.catalog.entry import Format, ModelEntry
from vllm_console.core.catalog.readers.numbers import MAX_DIM
from vllm_console.core.catalog.readers.quant import bits_of as quant_bits
from vllm_console.core.gpu.kvcache import KvLayout, kv_layout, text_section
from vllm_console.core.gpu.verdict import (
    BLOCK,
    DEFAULT_UTILIZATION,
    NON_TORCH,
    TIGHT_SLACK,
    Estimate,
    Fit,
    GiB,
    GpuMemory,
    Verdict,
    check_fit,
    visible_gpus,
)
from vllm_console.core.serve.spec import LaunchSpec

__all__ = [  # the verdict's names too: callers import the fit from here
    "BLOCK",
    "DEFAULT_UTILIZATION",
    "NON_TORCH",
    "TIGHT_SLACK",
    "Estimate",
    "Fit",
    "GiB",
    "GpuMemory",
    "Verdict",
    "check_fit",
    "estimate",
    "kv_bytes_per_token",
    "kv_layout",
    "params_from_config",
    "quant_bits",
    "text_section",
    "visible_gpus",
    "will_it_fit",
]

CUDA_GRAPHS = GiB // 2
BATCH_TOKENS = 8192
MAX_SEQS = 256
GROUP_SCALE_BYTES = 2.5 / 128  # an fp16 scale and a 4-bit zero per group of 128 weights

_NOT_GATED = {"gpt2", "gpt_neox", "gptj", "gpt_bigcode", "opt", "bloom", "falcon", "phi", "mpt"}
_QKV_BIAS = {"qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl"}
_DTYPE_BYTES = {"float32": 4, "float": 4, "float64": 8}


def _int(section: Mapping[str, object], *keys: str) -> int | None:
    for key in keys:
        value = section.get(key)
        if type(value) is int and 0 < value <= MAX_DIM:  # a larger size is no size (overflow)
            return value
    return None


def _experts(t: Mapping[str, object]) -> int | None:
    return _int(t, "num_experts", "num_local_experts", "n_routed_experts")


def _attention_params(t: Mapping[str, object], hidden: int, heads: int, kv: int, hd: int) -> int:
    lora = _int(t, "kv_lora_rank")
    if lora is None:
        biased = t.get("attention_bias") is True or t.get("model_type") in _QKV_BIAS
        return 2 * hidden * heads * hd + 2 * hidden * kv * hd + biased * (heads + 2 * kv) * hd
    nope, rope = _int(t, "qk_nope_head_dim") or hd, _int(t, "qk_rope_head_dim") or 0
    v_dim = _int(t, "v_head_dim") or hd
    q_lora = _int(t, "q_lora_rank")
    q = (
        hidden * q_lora + q_lora * heads * (nope + rope)
        if q_lora
        else hidden * heads * (nope + rope)
    )
    return q + hidden * (lora + rope) + lora * heads * (nope + v_dim) + heads * v_dim * hidden


def _moe_layers(t: Mapping[str, object], layers: int) -> int:
    first_dense = _int(t, "first_k_dense_replace") or 0
    step = _int(t, "decoder_sparse_step", "moe_layer_freq") or 1
    mlp_only = t.get("mlp_only_layers")
    dense = set(mlp_only) if isinstance(mlp_only, list) else set()
    return sum(
        1 for i in range(layers) if i >= first_dense and i not in dense and (i + 1) % step == 0
    )


def params_from_config(config: Mapping[str, object]) -> tuple[int, int] | None:
    """(all parameters, embedding + LM head ones) of the language model, or None."""
    t = text_section(config)
    hidden, layers = _int(t, "hidden_size", "n_embd", "d_model"), _int(t, "num_hidden_layers")
    vocab, heads = _int(t, "vocab_size"), _int(t, "num_attention_heads", "n_head")
    if not (hidden and layers and vocab and heads):
        return None
    kv = _int(t, "num_key_value_heads") or heads
    hd = _int(t, "head_dim") or hidden // heads
    inter = _int(t, "intermediate_size", "ffn_dim", "n_inner") or 4 * hidden
    mats = 2 if t.get("model_type") in _NOT_GATED else 3
    dense_mlp = mats * hidden * inter
    mlp = layers * dense_mlp
    experts = _experts(t)
    if experts:
        moe_inter = _int(t, "moe_intermediate_size") or inter
        shared = (_int(t, "n_shared_experts") or 0) * moe_inter
        shared = shared or _int(t, "shared_expert_intermediate_size") or 0
        moe_mlp = experts * mats * hidden * moe_inter + hidden * experts + mats * hidden * shared
        n_moe = _moe_layers(t, layers)
        mlp = n_moe * moe_mlp + (layers - n_moe) * dense_mlp
    tied = t.get("tie_word_embeddings", config.get("tie_word_embeddings")) is True
    embed = vocab * hidden * (1 if tied else 2)
    norms = (2 * layers + 1) * hidden
    return embed + layers * _attention_params(t, hidden, heads, kv, hd) + mlp + norms, embed


def kv_bytes_per_token(
    entry: ModelEntry, kv_bytes: float, *, tp: int = 1, pp: int = 1
) -> tuple[int | None, int | None]:
    """(whole model, one GPU) bytes of KV cache per token, every layer counted once (sliding
    windows too: see `kv_layout` for how far each layer grows); None where unknown."""
    layout = kv_layout(entry, kv_bytes, tp=tp, pp=pp)
    if layout is None or layout.unknown:
        return None, None
    return layout.per_token, layout.full_per_gpu + sum(w[2] for w in layout.windows)


def _act_bytes(entry: ModelEntry, spec: LaunchSpec) -> int:
    asked = (spec.dtype or "auto").lower()
    return _DTYPE_BYTES.get(asked, 2)  # auto: 16-bit, also for float32 checkpoints


def _kv_dtype_bytes(spec: LaunchSpec, act: int) -> float:
    kind = (spec.kv_cache_dtype or "auto").lower()
    return 1 if kind.startswith("fp8") else act


def _weights(
    entry: ModelEntry, spec: LaunchSpec, notes: list[str]
) -> tuple[int | None, str, int | None]:
    """(parameters, where they came from, weight bytes)."""
    act = _act_bytes(entry, spec)
    if entry.format is Format.GGUF:
        notes.append("GGUF weights counted at their file size")
        return entry.meta.params, "GGUF", entry.size_bytes
    checkpoint_bits = quant_bits(entry.meta.quantization)
    bits = checkpoint_bits or quant_bits(spec.quantization)
    from_config = params_from_config(entry.config)
    if entry.meta.params:  # logical ones, also for a quantized checkpoint (see the catalog)
        params, source = entry.meta.params, "safetensors"
        if from_config and isinstance(entry.config.get("vision_config"), dict):
            notes.append("parameters include the vision encoder")
    elif from_config:
        params, source = from_config[0], "config.json"
        notes.append("parameters estimated from config.json (no safetensors headers)")
        if text_section(entry.config) is not entry.config:
            notes.append("vision/audio encoders are not counted")
    elif entry.size_bytes:
        notes.append("weights taken as the files' size on disk (config.json says too little)")
        return None, "file size", entry.size_bytes
    else:
        return None, "", None
    if checkpoint_bits and entry.meta.stored_bytes:
        notes.append("quantized weights counted as stored: the size of the files vLLM loads")
        return params, source, entry.meta.stored_bytes
    if (quantization := entry.meta.quantization) and not bits:
        notes.append(f"unknown quantization {quantization!r}: counted as {8 * act}-bit")
    if not bits or bits >= 8 * act:
        return params, source, params * act
    embed = from_config[1] if from_config else 0
    per_weight = bits / 8 + (GROUP_SCALE_BYTES if bits < 8 else 0)
    notes.append(f"{bits}-bit weights: {per_weight:.2f} byte each; embeddings stay {8 * act}-bit")
    return params, source, int(embed * act + (params - embed) * per_weight)


def _margin(entry: ModelEntry, spec: LaunchSpec, act: int, tp: int) -> int:
    t = text_section(entry.config)
    hidden = _int(t, "hidden_size") or 4096
    inter = _int(t, "intermediate_size") or 4 * hidden
    if _experts(t):
        topk = _int(t, "num_experts_per_tok", "moe_topk") or 1
        inter = (_int(t, "moe_intermediate_size") or inter) * topk
    vocab = _int(t, "vocab_size") or 32000
    activation = BATCH_TOKENS * (2 * inter // tp + 4 * hidden) * act + MAX_SEQS * vocab * 4
    return NON_TORCH + (0 if spec.enforce_eager else CUDA_GRAPHS) + activation


def estimate(entry: ModelEntry, spec: LaunchSpec) -> Estimate:
    """Weights, KV cache per token and margin of `entry` launched with `spec`."""
    notes: list[str] = []
    tp, pp = max(1, spec.tensor_parallel_size), max(1, spec.pipeline_parallel_size)
    act = _act_bytes(entry, spec)
    params, source, weights = _weights(entry, spec, notes)
    layout = kv_layout(entry, _kv_dtype_bytes(spec, act), tp=tp, pp=pp)
    kv_total, kv_gpu, unknown = _kv_figures(layout, notes)
    return Estimate(
        params=params,
        params_from=source,
        weights_bytes=weights,
        kv_bytes_per_token=kv_total,
        gpus_needed=tp * pp,
        weights_per_gpu=math.ceil(weights / (tp * pp)) if weights is not None else None,
        kv_per_token_per_gpu=kv_gpu,
        margin_per_gpu=_margin(entry, spec, act, tp),
        max_model_len=spec.max_model_len or entry.meta.context_length,
        model_context=entry.meta.context_length,
        notes=tuple(notes),
        kv_windows_per_gpu=tuple((w[0], w[2]) for w in layout.windows) if layout else (),
        kv_unknown=unknown,
    )


def _kv_figures(
    layout: KvLayout | None, notes: list[str]
) -> tuple[int | None, int | None, str | None]:
    """(full-attention bytes per token: whole model, one GPU; why there is no estimate)."""
    if layout is None:
        notes.append("KV cache size unknown: config.json lacks layers, KV heads or head size")
        return None, None, None
    if layout.unknown:
        return None, None, layout.unknown
    for window, whole, _ in layout.windows:
        notes.append(
            f"sliding-window layers ({whole / 1024:.0f} KiB/token) hold {window:,} tokens"
            " plus those in flight, as vLLM's hybrid KV cache does"
        )
    return layout.full, layout.full_per_gpu, None


def will_it_fit(entry: ModelEntry, spec: LaunchSpec, gpus: Sequence[GpuMemory]) -> Fit:
    """The estimate for `entry` and `spec` checked against the chosen `gpus`."""
    return check_fit(estimate(entry, spec), gpus, spec.gpu_memory_utilization)
