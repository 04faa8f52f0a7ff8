"""What a quantized checkpoint's tensors hold: logical parameters, not stored elements.

A safetensors header counts elements as stored, and a quantized checkpoint stores its
weights packed: AWQ and GPTQ `qweight` (and compressed-tensors `weight_packed`) are int32
words of 32/bits weights each; MXFP4 `*_blocks` (gpt-oss) and bitsandbytes 4-bit `weight`
are bytes of two 4-bit values; and scales, zero points, group indices and absmax tables are
bookkeeping, not parameters. `TensorKinds` sorts a header's elements by these name rules (the
names each method's exporter writes, as vLLM's loaders read them), and `logical_params`
turns them into the model's parameter count with the bit width from config.json.

The dtype vLLM computes in is not the storage either (`compute_dtype`): config.json's
`torch_dtype`/`dtype`, else the widest float in the headers (vLLM's
`common_broadcastable_dtype` over the weights' dtypes), and float32 loaded as bfloat16
(vLLM's "auto" on GPUs with bfloat16; float16 before Ampere).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# int32 words packing 32/bits weights (AWQ, GPTQ, compressed-tensors pack-quantized).
PACKED_SUFFIXES = (".qweight", ".weight_packed")
# Bytes of two 4-bit values: MXFP4 blocks (gpt-oss experts).
NIBBLE_SUFFIXES = ("_blocks",)
# Quantization bookkeeping: scales, zero points, group indices, absmax and code tables.
AUX_SUFFIXES = (
    ".qzeros",
    ".scales",
    ".g_idx",
    ".weight_scale",
    ".weight_scale_inv",
    ".weight_zero_point",
    ".weight_g_idx",
    ".weight_shape",
    ".weight_global_scale",
    ".input_scale",
    ".input_global_scale",
    ".output_scale",
    ".k_scale",
    ".v_scale",
    ".absmax",
    ".quant_map",
    ".nested_absmax",
    ".nested_quant_map",
    ".bitsandbytes__nf4",
    ".bitsandbytes__fp4",
    ".SCB",
    ".weight_format",
    "_scales",
)

_FLOATS = ("F32", "BF16", "F16")  # widest first: what every other float casts into
_CONFIG_DTYPES = {
    "float32": "float32",
    "float": "float32",
    "float16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
}
_HEADER_FLOATS = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}
_NIBBLE_METHODS = ("bitsandbytes 4-bit", "nvfp4", "fp4")


@dataclass(frozen=True)
class TensorKinds:
    """Elements of one or more headers by kind: `packed` int32 words, `nibbles` bytes of two
    4-bit values, `byte_weights` uint8 `.weight` tensors (bitsandbytes 4-bit packs two per
    byte), `aux` quantization bookkeeping; the rest are plain parameters."""

    packed: int = 0
    nibbles: int = 0
    byte_weights: int = 0
    aux: int = 0

    def plus(self, other: TensorKinds) -> TensorKinds:
        return TensorKinds(
            self.packed + other.packed,
            self.nibbles + other.nibbles,
            self.byte_weights + other.byte_weights,
            self.aux + other.aux,
        )


NO_KINDS = TensorKinds()


def kind_of(name: str, dtype: object) -> int:
    """0 plain, 1 packed, 2 nibbles, 3 byte weight, 4 aux: the slot of `TensorKinds`."""
    if name.endswith(AUX_SUFFIXES):
        return 4
    if dtype == "I32" and name.endswith(PACKED_SUFFIXES):
        return 1
    if dtype == "U8":
        if name.endswith(NIBBLE_SUFFIXES):
            return 2
        if name.endswith(".weight"):
            return 3
    return 0


def bits_of(label: str | None) -> int | None:
    """Bits per quantized weight from a label ("AWQ 4-bit", "FP8", "fp8", "W4A16", ...)."""
    if not label:
        return None
    low = label.lower()
    explicit = re.search(r"(\d+)-bit", low)
    if explicit:
        return int(explicit.group(1))
    if any(k in low for k in ("fp8", "int8", "w8a8", "w8a16", "fbgemm", "experts_int8")):
        return 8
    if any(k in low for k in ("int4", "w4a16", "fp4", "awq", "gptq", "bitsandbytes", "marlin")):
        return 4
    return None


def logical_params(raw: int, kinds: TensorKinds, quantization: str | None) -> int:
    """The model's parameters from `raw` stored elements sorted into `kinds`.

    Unquantized checkpoints are counted as stored (a `.scales` tensor of a plain model is a
    parameter like any other). Quantized: packed words times 32/bits (bits from the label,
    4 if it says none), nibble bytes twice, uint8 weights twice for 4-bit methods, and no
    bookkeeping.
    """
    if not quantization:
        return raw
    bits = bits_of(quantization) or 4
    per_word = 32 // bits if 0 < bits <= 32 else 8
    low = quantization.lower()
    byte_weight = 2 if any(m in low for m in _NIBBLE_METHODS) else 1
    plain = raw - kinds.packed - kinds.nibbles - kinds.byte_weights - kinds.aux
    return plain + kinds.packed * per_word + kinds.nibbles * 2 + kinds.byte_weights * byte_weight


def compute_dtype(config: Mapping[str, object], header_dtypes: Iterable[str]) -> str | None:
    """The dtype vLLM computes in with `--dtype auto` on a GPU with bfloat16; None: unknown."""
    stated = _config_dtype(config)
    if stated is None:
        present = set(header_dtypes)
        widest = next((d for d in _FLOATS if d in present), None)
        stated = _HEADER_FLOATS[widest] if widest else None
    if stated == "float32":
        return "bfloat16"
    return stated


def _config_dtype(config: Mapping[str, object]) -> str | None:
    sections: list[Mapping[str, object]] = [config]
    sections += [
        v
        for k in ("text_config", "llm_config", "language_config", "thinker_config")
        if isinstance(v := config.get(k), dict)
    ]
    for section in sections:
        for key in ("dtype", "torch_dtype"):
            value = section.get(key)
            if isinstance(value, str) and value.lower() in _CONFIG_DTYPES:
                return _CONFIG_DTYPES[value.lower()]
    return None
