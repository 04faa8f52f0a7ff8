"""The KV cache a model needs per token, layer by layer, the way vLLM's cache specs count it.

vLLM gives each attention layer a spec (`vllm/v1/kv_cache_interface.py`) and sizes one
sequence of max model length as the sum of their `max_memory_usage_bytes`:

- full attention (`FullAttentionSpec`): the whole length, in blocks of 16 tokens;
- sliding window (`SlidingWindowSpec`): min(window - 1 + tokens in flight, length), plus one
  block; which layers slide is config.json's `layer_types`, else the model's own pattern
  (gemma-2: every other layer; gemma-3: five of six), else every layer when the config has a
  `sliding_window` (Mistral v0.1, Phi-3) and does not switch it off (`use_sliding_window`);
- MLA (DeepSeek): one latent of kv_lora_rank + rope dims per layer, the same on every TP rank.

Mamba, linear attention and other hybrid layers keep a per-sequence state whose size
depends on each family's kernels: a model with them is not understood, and `KvLayout.unknown`
says so instead of a guess.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.core.catalog.readers.numbers import MAX_DIM

FULL, SLIDING = "full_attention", "sliding_attention"
_KNOWN_KINDS = {FULL, SLIDING, "attention"}
# Hybrid families whose config has no `layer_types`: their Mamba/linear layers are not
# attention layers, and their state is not a per-token cache.
_HYBRID_TYPES = {
    "mamba", "mamba2", "falcon_mamba", "jamba", "bamba", "zamba", "zamba2", "falcon_h1",
    "nemotron_h", "granitemoehybrid", "plamo2", "lfm2", "minimax_text_01", "minimax_m1",
    "qwen3_next", "rwkv", "rwkv5", "rwkv6", "recurrent_gemma", "xlstm", "kimi_linear",
}  # fmt: skip
_HYBRID_KEYS = ("layers_block_type", "hybrid_override_pattern", "attn_type_list", "ssm_cfg")
# The sliding pattern of families whose config.json leaves `layer_types` to transformers:
# layer i slides unless (i + 1) is a multiple of the pattern.
_PATTERNS = {"gemma2": 2, "gemma3": 6, "gemma3_text": 6, "cohere2": 4}
_NESTED = ("text_config", "llm_config", "language_config", "thinker_config")


@dataclass(frozen=True)
class KvLayout:
    """Bytes per token of the full-attention layers (whole model, one GPU), and for each
    sliding window the bytes per token of its layers (window, whole model, one GPU).
    `unknown` is why the layout is not understood (then the figures are 0)."""

    full: int = 0
    full_per_gpu: int = 0
    windows: tuple[tuple[int, int, int], ...] = ()
    unknown: str | None = None

    @property
    def per_token(self) -> int:
        """All layers at one token each (what a sequence shorter than every window takes)."""
        return self.full + sum(w[1] for w in self.windows)


def _int(section: Mapping[str, object], *keys: str) -> int | None:
    for key in keys:
        value = section.get(key)
        if type(value) is int and 0 < value <= MAX_DIM:  # a larger size is no size (overflow)
            return value
    return None


def text_section(config: Mapping[str, object]) -> Mapping[str, object]:
    """The language model's config: nested in multimodal configs, else the config itself."""
    for key in _NESTED:
        nested = config.get(key)
        if isinstance(nested, dict) and _int(nested, "hidden_size", "num_hidden_layers"):
            return nested
    return config


def _window(t: Mapping[str, object]) -> int | None:
    if t.get("use_sliding_window") is False:  # Qwen2/3: transformers drops the window then
        return None
    return _int(t, "sliding_window")


def layer_kinds(t: Mapping[str, object], layers: int) -> list[str] | str:
    """Each layer's attention kind, or why the model's layers are not understood."""
    model_type = t.get("model_type")
    if model_type in _HYBRID_TYPES or any(k in t for k in _HYBRID_KEYS):
        return f"{model_type or 'this model'} has Mamba or linear-attention layers"
    declared = t.get("layer_types")
    if isinstance(declared, list) and declared:
        if len(declared) != layers or not all(isinstance(k, str) for k in declared):
            return "its layer_types do not match its layers"
        odd = sorted({k for k in declared if k not in _KNOWN_KINDS})
        if odd:
            return f"its {', '.join(odd)[:60]} layers are not attention layers"
        if _window(t) is None:
            return [FULL] * layers
        return [SLIDING if k == SLIDING else FULL for k in declared]
    if _window(t) is None:
        return [FULL] * layers
    pattern = _PATTERNS.get(str(model_type))
    if isinstance(model_type, str) and model_type.startswith("gemma3"):
        pattern = _int(t, "sliding_window_pattern") or pattern
    if pattern:
        return [SLIDING if (i + 1) % pattern else FULL for i in range(layers)]
    return [SLIDING] * layers


def kv_layout(entry: ModelEntry, kv_bytes: float, *, tp: int = 1, pp: int = 1) -> KvLayout | None:
    """The model's KV cache per token, split over `tp` x `pp` GPUs; None where config.json
    lacks a size (layers, KV heads, head size)."""
    t = text_section(entry.config)
    layers = entry.meta.num_layers or _int(t, "num_hidden_layers")
    if not layers:
        return None
    share = math.ceil(layers / pp) / layers  # one pipeline stage's layers
    lora = _int(t, "kv_lora_rank")
    if lora is not None:  # MLA: one latent vector per layer, the same on every TP rank
        per_layer = (lora + (_int(t, "qk_rope_head_dim") or 0)) * kv_bytes
        return KvLayout(int(layers * per_layer), int(layers * share * per_layer))
    kinds = layer_kinds(t, layers)
    if isinstance(kinds, str):
        return KvLayout(unknown=f"KV cache not estimated: {kinds}")
    kv, hd = entry.meta.num_kv_heads, entry.meta.head_dim
    if not (kv and hd):
        return None
    per_layer = kv * hd * 2 * kv_bytes
    per_layer_gpu = max(1, kv // tp) * hd * 2 * kv_bytes
    return _split(kinds, _window(t), per_layer, per_layer_gpu * share)


def _split(kinds: Sequence[str], window: int | None, whole: float, gpu: float) -> KvLayout:
    full = sum(1 for k in kinds if k == FULL)
    sliding = len(kinds) - full
    windows = ((window, int(sliding * whole), int(sliding * gpu)),) if window and sliding else ()
    return KvLayout(int(full * whole), int(full * gpu), windows)
