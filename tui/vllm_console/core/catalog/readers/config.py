"""Model metadata from config.json: architecture, dtype, quantization, context length.

Nothing here loads weights. `config_info` turns a parsed config.json into the catalog's
`ModelMeta` (every field but `params`, which the weights' headers give); `load_json` reads a
JSON object, returning the reason instead of raising. Safetensors headers are read in
`readers.safetensors`, GGUF headers in `readers.gguf`.

Context length: `max_position_embeddings` (or `n_positions`, `seq_length`, ...), looked up at
the top level and then in `text_config`/`llm_config`/`language_config` for multimodal models.
Like vLLM, a `rope_scaling` of type yarn (with `original_max_position_embeddings`), linear or
dynamic multiplies it by its factor; other rope types leave it alone.

Numbers are bounded (`readers.numbers`): `config_meta` leaves an implausible field empty and
says so as a problem ("implausible context length 1e400 in config.json").
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping

from vllm_console.core.catalog.meta import ModelMeta
from vllm_console.core.catalog.readers.numbers import (
    MAX_CONTEXT,
    MAX_COUNT,
    MAX_DIM,
    MAX_ROPE_FACTOR,
    implausible,
)
from vllm_console.core.files import read_capped, reason

MAX_CONFIG_BYTES = 16 * 1024 * 1024

_NESTED_CONFIGS = ("text_config", "llm_config", "language_config", "thinker_config")
_CONTEXT_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_sequence_length",
    "seq_length",
    "max_seq_len",
    "n_ctx",
)
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
_HEAD_KEYS = ("num_attention_heads", "n_head", "n_heads")
_KV_HEAD_KEYS = ("num_key_value_heads", "n_head_kv", "num_kv_heads", "multi_query_group_num")
_HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model")

_MAX_BITS = 64  # bits per quantized weight; a larger number is no bit width

_NAME_HINTS = (
    (re.compile(r"(?i)(?<![a-z])awq(?![a-z])"), "AWQ"),
    (re.compile(r"(?i)(?<![a-z])gptq(?![a-z])"), "GPTQ"),
    (re.compile(r"(?i)(?<![a-z])fp8(?![a-z])"), "FP8"),
    (re.compile(r"(?i)(?<![a-z])w4a16(?![a-z])"), "W4A16"),
    (re.compile(r"(?i)(?<![a-z])w8a8(?![a-z])"), "W8A8"),
    (re.compile(r"(?i)(?<![a-z])int4(?![a-z])"), "INT4"),
    (re.compile(r"(?i)(?<![a-z])int8(?![a-z])"), "INT8"),
    (re.compile(r"(?i)bnb[-_]?4bit"), "bitsandbytes 4-bit"),
    (re.compile(r"(?i)(?<![a-z])mxfp4(?![a-z])"), "MXFP4"),
)

# Each hint holds one of these words: a name without any (most names) is done in one search.
_ANY_HINT = re.compile(r"(?i)awq|gptq|fp8|w4a16|w8a8|int4|int8|bnb|mxfp4")

_METHOD_NAMES = {
    "awq": "AWQ",
    "gptq": "GPTQ",
    "fp8": "FP8",
    "bitsandbytes": "bitsandbytes",
    "compressed-tensors": "compressed-tensors",
    "mxfp4": "MXFP4",
    "hqq": "HQQ",
    "eetq": "EETQ",
    "aqlm": "AQLM",
    "marlin": "Marlin",
    "gptq_marlin": "GPTQ",
    "awq_marlin": "AWQ",
    "modelopt": "ModelOpt",
    "torchao": "torchao",
}


def load_json(path: str) -> tuple[dict[str, object] | None, str | None]:
    """Read a JSON object from a file: (value, None) or (None, reason)."""
    try:
        raw = read_capped(path, MAX_CONFIG_BYTES)
    except OSError as exc:
        return None, reason(exc)
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # ValueError: also a number of 4,300+ digits
        return None, f"invalid JSON ({_short(exc)})"
    if not isinstance(value, dict):
        return None, "not a JSON object"
    return value, None


def _short(exc: Exception) -> str:
    """An exception's message cut to a line (json quotes the offending text)."""
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "…"


def as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _sections(config: Mapping[str, object]) -> list[Mapping[str, object]]:
    """The config itself, then the nested language-model configs of multimodal models."""
    found: list[Mapping[str, object]] = [config]
    for key in _NESTED_CONFIGS:
        nested = config.get(key)
        if isinstance(nested, dict):
            found.append(nested)
    return found


def _pick_int(
    sections: Iterable[Mapping[str, object]],
    keys: tuple[str, ...],
    bound: tuple[str, int, list[str]] | None = None,
) -> int | None:
    """The first positive int under one of `keys`. With `bound` (what it is, its bound, the
    problems), a value past the bound is reported and the field left empty."""
    for section in sections:
        for key in keys:
            value = section.get(key)
            if type(value) is int and value > 0:
                if bound is not None and value > bound[1]:
                    bound[2].append(implausible(bound[0], value, "config.json"))
                    return None
                return value
    return None


def _pick_str(sections: Iterable[Mapping[str, object]], keys: tuple[str, ...]) -> str | None:
    for section in sections:
        for key in keys:
            value = section.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def _context_length(sections: list[Mapping[str, object]], problems: list[str]) -> int | None:
    before = len(problems)
    for section in sections:
        base = _pick_int([section], _CONTEXT_KEYS, ("context length", MAX_CONTEXT, problems))
        if base is not None:
            scaled = _apply_rope_scaling(section, base, problems)
            return None if scaled is None else _bounded(scaled, problems)
        if len(problems) > before:  # the first context found is implausible: none at all
            return None
    return None


def _bounded(context: int, problems: list[str]) -> int | None:
    if context > MAX_CONTEXT:
        problems.append(implausible("context length", context, "config.json"))
        return None
    return context


def _apply_rope_scaling(
    section: Mapping[str, object], base: int, problems: list[str]
) -> int | None:
    """The context a rope scaling stretches `base` to; None if its factor is implausible."""
    scaling = section.get("rope_scaling")
    if not isinstance(scaling, dict):
        return base
    kind = _as_str(scaling.get("rope_type")) or _as_str(scaling.get("type"))
    factor = scaling.get("factor")
    if not isinstance(factor, int | float) or isinstance(factor, bool) or not factor > 1:
        return base  # `not >`: a NaN factor is no factor
    if kind not in ("yarn", "linear", "dynamic"):
        return base
    if not factor <= MAX_ROPE_FACTOR:  # also inf
        problems.append(implausible("rope factor", factor, "config.json"))
        return None
    if kind == "yarn":
        original = as_int(scaling.get("original_max_position_embeddings"))
        if original is not None and 0 < original <= MAX_CONTEXT:
            base = original
    return math.floor(base * factor)


def _head_dim(sections: list[Mapping[str, object]], problems: list[str]) -> int | None:
    explicit = _pick_int(sections, ("head_dim",), ("head size", MAX_DIM, problems))
    if explicit is not None:
        return explicit
    hidden = _pick_int(sections, _HIDDEN_KEYS, ("hidden size", MAX_DIM, problems))
    heads = _pick_int(sections, _HEAD_KEYS)
    if hidden and heads:
        return hidden // heads or None
    return None


def quantization_from_config(config: Mapping[str, object]) -> str | None:
    """`quantization_config` -> e.g. "AWQ 4-bit", "GPTQ 8-bit", "FP8"; None if absent."""
    qc = config.get("quantization_config")
    if not isinstance(qc, dict):
        for section in _sections(config)[1:]:
            nested = section.get("quantization_config")
            if isinstance(nested, dict):
                qc = nested
                break
        else:
            return None
    method = (_as_str(qc.get("quant_method")) or "").lower()
    name = _METHOD_NAMES.get(method, method.upper() if method else "quantized")
    bits = _quant_bits(method, qc)
    if method == "compressed-tensors":
        return _compressed_tensors_text(qc)
    if method in ("fp8", "mxfp4"):
        return name
    return f"{name} {bits}-bit" if bits else name


def _quant_bits(method: str, qc: Mapping[str, object]) -> int | None:
    if method == "bitsandbytes":
        if qc.get("load_in_4bit") is True:
            return 4
        if qc.get("load_in_8bit") is True:
            return 8
        return None
    for key in ("bits", "w_bit", "weight_bits", "nbits"):
        bits = as_int(qc.get(key))
        if bits and 0 < bits <= _MAX_BITS:
            return bits
    return None


def _compressed_tensors_text(qc: Mapping[str, object]) -> str:
    groups = qc.get("config_groups")
    if isinstance(groups, dict):
        for group in groups.values():
            weights = group.get("weights") if isinstance(group, dict) else None
            if not isinstance(weights, dict):
                continue
            bits = as_int(weights.get("num_bits"))
            if bits is not None and not 0 < bits <= _MAX_BITS:
                bits = None
            kind = _as_str(weights.get("type")) or "int"
            if bits == 8 and kind == "float":
                return "compressed-tensors FP8"
            if bits:
                return f"compressed-tensors {bits}-bit"
    return "compressed-tensors"


def quantization_from_name(name: str) -> str | None:
    """A quantization hint from a model id or file name (AWQ, GPTQ, FP8, INT4, ...)."""
    if _ANY_HINT.search(name) is None:
        return None
    for pattern, label in _NAME_HINTS:
        if pattern.search(name):
            return label
    return None


def config_info(config: Mapping[str, object]) -> ModelMeta:
    """What a parsed config.json says (None where it says nothing; `params` always None)."""
    return config_meta(config)[0]


def config_meta(config: Mapping[str, object]) -> tuple[ModelMeta, tuple[str, ...]]:
    """`config_info`, and the problems with it: each implausible number (its field is None)."""
    problems: list[str] = []
    sections = _sections(config)
    architectures = config.get("architectures")
    architecture = None
    if isinstance(architectures, list) and architectures:
        architecture = _as_str(architectures[0])
    heads = _pick_int(sections, _HEAD_KEYS, ("attention head count", MAX_COUNT, problems))
    kv_heads = _pick_int(sections, _KV_HEAD_KEYS, ("KV head count", MAX_COUNT, problems))
    meta = ModelMeta(
        architecture=architecture,
        model_type=_pick_str(sections, ("model_type",)),
        dtype=_pick_str(sections, ("torch_dtype", "dtype")),
        quantization=quantization_from_config(config),
        context_length=_context_length(sections, problems),
        num_layers=_pick_int(sections, _LAYER_KEYS, ("layer count", MAX_COUNT, problems)),
        num_kv_heads=kv_heads or heads,
        head_dim=_head_dim(sections, problems),
    )
    return meta, tuple(problems)
