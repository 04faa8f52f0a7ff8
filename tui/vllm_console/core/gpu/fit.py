"""Will it fit: the weights and the KV cache per token against the free memory of the GPUs.

An estimate, stated with its assumptions (each result carries them as notes):

- Weights: parameters x bytes of the dtype vLLM loads (16-bit unless float32 is asked for;
  vLLM's "auto" loads float32 checkpoints in 16-bit). Quantized linear layers take bits/8 bytes
  per weight plus group scales (4-bit: ~0.52 byte, FP8/INT8: 1 byte); embeddings and the LM
  head stay 16-bit. Safetensors counts packed int32 elements of AWQ/GPTQ weights, not
  parameters, so a quantized model's parameters come from config.json, as do those of a model
  without safetensors headers.
- KV cache per token: layers x KV heads x head size x 2 (K and V) x bytes of the KV cache dtype;
  MLA models (DeepSeek) cache kv_lora_rank + rope dims once per layer. Sliding-window layers
  are counted as full ones (an overestimate).
- vLLM's own use per GPU (the margin): non-torch memory 0.5 GiB, CUDA graphs 0.5 GiB (none with
  enforce eager), and the activation peak of one batch of 8,192 tokens plus the sampler's logits.

vLLM takes total x gpu_memory_utilization on each GPU, refuses to start when that is more than
the free memory, and its KV cache (the budget less weights and margin) must hold one sequence of
max model length.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol, TypeVar

from vllm_console.core.catalog.entry import Format, ModelEntry, format_params
from vllm_console.core.serve.spec import LaunchSpec

GiB = 1 << 30
DEFAULT_UTILIZATION = 0.9  # vLLM's default
NON_TORCH = GiB // 2
CUDA_GRAPHS = GiB // 2
BATCH_TOKENS = 8192
MAX_SEQS = 256
GROUP_SCALE_BYTES = 2.5 / 128  # an fp16 scale and a 4-bit zero per group of 128 weights
BLOCK = 16  # vLLM's KV block: lengths round down to it
TIGHT_SLACK = GiB  # less KV room than this beyond one full sequence is "tight"

_NESTED = ("text_config", "llm_config", "language_config", "thinker_config")
_NOT_GATED = {"gpt2", "gpt_neox", "gptj", "gpt_bigcode", "opt", "bloom", "falcon", "phi", "mpt"}
_QKV_BIAS = {"qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl"}
_DTYPE_BYTES = {"float32": 4, "float": 4, "float64": 8}


class Verdict(StrEnum):
    FITS = "fits"
    TIGHT = "tight"
    WONT_FIT = "won't fit"
    NO_GPU = "no GPU"
    UNKNOWN = "unknown"


class GpuMemory(Protocol):
    """What the fit needs of a GPU: `GpuSample` and `GpuBrief` both qualify."""

    @property
    def index(self) -> int: ...
    @property
    def memory_total(self) -> int | None: ...
    @property
    def memory_free(self) -> int | None: ...


G = TypeVar("G", bound=GpuMemory)


def _names_gpu(gpu: GpuMemory, token: str) -> bool:
    if token.isdigit():
        return gpu.index == int(token)
    uuid = getattr(gpu, "uuid", None)
    return bool(token) and isinstance(uuid, str) and uuid.startswith(token)


def visible_gpus(gpus: Sequence[G], cuda_visible_devices: str | None) -> list[G]:
    """The GPUs a launch sees under CUDA_VISIBLE_DEVICES (indices or UUID prefixes), in order.

    Like CUDA, the list stops at the first entry that names no GPU ("" or "-1": none). Indices
    are NVML's (PCI order): a launch should set CUDA_DEVICE_ORDER=PCI_BUS_ID to agree.
    """
    if cuda_visible_devices is None:
        return list(gpus)
    chosen: list[G] = []
    for token in (t.strip() for t in cuda_visible_devices.split(",")):
        match = next((g for g in gpus if _names_gpu(g, token)), None)
        if match is None:
            break
        chosen.append(match)
    return chosen


@dataclass(frozen=True)
class Estimate:
    """The model's memory for one launch spec; per-GPU figures split over TP x PP GPUs."""

    params: int | None
    params_from: str  # "safetensors", "config.json", "file size", or "" when unknown
    weights_bytes: int | None
    kv_bytes_per_token: int | None  # all layers, all GPUs together
    gpus_needed: int
    weights_per_gpu: int | None
    kv_per_token_per_gpu: int | None
    margin_per_gpu: int
    max_model_len: int | None  # the spec's, else the model's context length
    model_context: int | None
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        weights = _gib(self.weights_bytes)
        kv = f"{self.kv_bytes_per_token / 1024:.0f} KiB" if self.kv_bytes_per_token else "?"
        return f"{format_params(self.params)} params, weights {weights}, KV cache {kv}/token"


@dataclass(frozen=True)
class Fit:
    verdict: Verdict
    reason: str
    estimate: Estimate
    gpus: tuple[int, ...] = ()
    utilization: float | None = None
    max_model_len: int | None = None  # largest that fits at a utilization that can start
    utilization_needed: float | None = None  # for the estimate's max model length

    def short(self) -> str:
        return str(self.verdict)

    def lines(self) -> list[str]:
        out = [f"{self.verdict}: {self.reason}", self.estimate.summary()]
        if self.max_model_len is not None:
            out.append(f"largest max model length that fits: {self.max_model_len:,}")
        if self.utilization_needed is not None:
            beyond = " (more than the whole GPU)" if self.utilization_needed > 1 else ""
            out.append(f"utilization needed: {self.utilization_needed:.2f}{beyond}")
        return out + [f"note: {n}" for n in self.estimate.notes]


def _gib(n: float | None) -> str:
    return "?" if n is None else f"{n / GiB:.1f} GiB"


def _int(section: Mapping[str, object], *keys: str) -> int | None:
    for key in keys:
        value = section.get(key)
        if type(value) is int and value > 0:
            return value
    return None


def text_section(config: Mapping[str, object]) -> Mapping[str, object]:
    """The language model's config: nested in multimodal configs, else the config itself."""
    for key in _NESTED:
        nested = config.get(key)
        if isinstance(nested, dict) and _int(nested, "hidden_size", "num_hidden_layers"):
            return nested
    return config


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
    """(whole model, one GPU) bytes of KV cache per token; None where the config lacks a size."""
    t = text_section(entry.config)
    layers = entry.meta.num_layers or _int(t, "num_hidden_layers")
    if not layers:
        return None, None
    layers_per_gpu = math.ceil(layers / pp)
    lora = _int(t, "kv_lora_rank")
    if lora is not None:  # MLA: one latent vector per layer, the same on every TP rank
        per_layer = (lora + (_int(t, "qk_rope_head_dim") or 0)) * kv_bytes
        return int(layers * per_layer), int(layers_per_gpu * per_layer)
    kv, hd = entry.meta.num_kv_heads, entry.meta.head_dim
    if not (kv and hd):
        return None, None
    total = layers * kv * hd * 2 * kv_bytes
    return int(total), int(layers_per_gpu * max(1, kv // tp) * hd * 2 * kv_bytes)


def quant_bits(text: str | None) -> int | None:
    """Bits per quantized weight from a label ("AWQ 4-bit", "FP8", "fp8", "W4A16", ...)."""
    if not text:
        return None
    low = text.lower()
    explicit = re.search(r"(\d+)-bit", low)
    if explicit:
        return int(explicit.group(1))
    if any(k in low for k in ("fp8", "int8", "w8a8", "w8a16", "fbgemm", "experts_int8")):
        return 8
    if any(k in low for k in ("int4", "w4a16", "fp4", "awq", "gptq", "bitsandbytes", "marlin")):
        return 4
    return None


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
    if entry.meta.params and not checkpoint_bits:
        params, source = entry.meta.params, "safetensors"
        if from_config and isinstance(entry.config.get("vision_config"), dict):
            notes.append("parameters include the vision encoder")
    elif from_config:
        params, source = from_config[0], "config.json"
        why = "quantized weights are packed" if checkpoint_bits else "no safetensors headers"
        notes.append(f"parameters estimated from config.json ({why})")
        if text_section(entry.config) is not entry.config:
            notes.append("vision/audio encoders are not counted")
    elif entry.size_bytes:
        notes.append("weights taken as the files' size on disk (config.json says too little)")
        return None, "file size", entry.size_bytes
    else:
        return None, "", None
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
    kv_total, kv_gpu = kv_bytes_per_token(entry, _kv_dtype_bytes(spec, act), tp=tp, pp=pp)
    if kv_total is None:
        notes.append("KV cache size unknown: config.json lacks layers, KV heads or head size")
    t = text_section(entry.config)
    if t.get("use_sliding_window") is True or "sliding_attention" in str(t.get("layer_types")):
        notes.append("sliding-window layers counted as full attention (an overestimate)")
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
    )


def check_fit(est: Estimate, gpus: Sequence[GpuMemory], utilization: float | None) -> Fit:
    """Fits / tight / won't fit on the first `est.gpus_needed` of `gpus` (the chosen ones)."""
    if not gpus:
        return Fit(Verdict.NO_GPU, "no GPU: only a CPU build of vLLM can run this here", est)
    if est.weights_per_gpu is None or est.kv_per_token_per_gpu is None:
        return Fit(Verdict.UNKNOWN, "too little is known about the model to estimate", est)
    n = est.gpus_needed
    if len(gpus) < n:
        return Fit(
            Verdict.WONT_FIT, f"needs {n} GPUs (tensor x pipeline parallel), {len(gpus)} here", est
        )
    chosen = gpus[:n]
    totals = [g.memory_total for g in chosen]
    frees = [g.memory_free for g in chosen]
    ids = tuple(g.index for g in chosen)
    if any(v is None for v in totals + frees):
        return Fit(Verdict.UNKNOWN, "the GPU does not report its memory", est, ids)
    total, free = min(v for v in totals if v is not None), min(v for v in frees if v is not None)
    return _verdict(est, ids, total, free, utilization or DEFAULT_UTILIZATION)


def _floor2(x: float) -> float:
    return math.floor(x * 100) / 100


def _verdict(est: Estimate, ids: tuple[int, ...], total: int, free: int, util: float) -> Fit:
    fixed = (est.weights_per_gpu or 0) + est.margin_per_gpu
    kv = est.kv_per_token_per_gpu or 1
    length = est.max_model_len or BLOCK
    usable = min(util, _floor2(free / total))  # vLLM will not start above free / total
    room = total * usable - fixed
    fits_len = int(room // kv) // BLOCK * BLOCK if room > 0 else 0
    if est.model_context:
        fits_len = min(fits_len, est.model_context)
    need = math.ceil((fixed + kv * length) / total * 100) / 100
    fit = Fit(Verdict.FITS, "", est, ids, util, fits_len or None, need)
    where = f"{_gib(free)} free of {_gib(total)} per GPU"
    if fixed >= free:
        why = f"weights {_gib(est.weights_per_gpu)} + margin {_gib(est.margin_per_gpu)} > {where}"
        return _with(fit, Verdict.WONT_FIT, why)
    if util > free / total:
        why = f"utilization {util:.2f} asks for {_gib(total * util)}, but {where}"
        if need <= usable:
            why += f"; {need:.2f} would do"
        return _with(fit, Verdict.WONT_FIT, why)
    seqs = f"{length:,} tokens"
    if room <= 0:
        why = (
            f"at utilization {util:.2f} ({_gib(total * util)}) weights "
            f"{_gib(est.weights_per_gpu)} + margin {_gib(est.margin_per_gpu)} leave no KV cache"
        )
        if need <= _floor2(free / total):
            why += f"; utilization {need:.2f} would do"
        return _with(fit, Verdict.WONT_FIT, why)
    if room < kv * length:
        why = f"KV cache gets {_gib(room)}, one sequence of {seqs} needs {_gib(kv * length)}"
        if need <= _floor2(free / total):
            why += f"; utilization {need:.2f} would do"
        return _with(fit, Verdict.WONT_FIT, why)
    slack = room - kv * length
    held = f"KV cache {_gib(room)} holds {room / (kv * length):.1f} x {seqs} at {util:.2f}"
    if slack < max(TIGHT_SLACK, 0.1 * fixed) or free - total * util < NON_TORCH // 2:
        return _with(fit, Verdict.TIGHT, f"{held}, little to spare; {where}")
    return _with(fit, Verdict.FITS, f"{held}; {where}")


def _with(fit: Fit, verdict: Verdict, reason: str) -> Fit:
    return replace(fit, verdict=verdict, reason=reason)


def will_it_fit(entry: ModelEntry, spec: LaunchSpec, gpus: Sequence[GpuMemory]) -> Fit:
    """The estimate for `entry` and `spec` checked against the chosen `gpus`."""
    return check_fit(estimate(entry, spec), gpus, spec.gpu_memory_utilization)
