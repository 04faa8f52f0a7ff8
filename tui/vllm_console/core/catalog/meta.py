"""What a model's own files say about it, as one record: `ModelMeta`.

The readers fill it (config.json in `readers.config`; safetensors and GGUF headers through
`describe`), `ModelEntry.meta` holds it, and the index stores it as a plain tuple
(`as_tuple`, then `ModelMeta(*values)`). One record in one place, so a new field is added
once instead of being copied from reader to description to entry.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class ModelMeta:
    """The model's metadata; None where its files say nothing (or have not been read yet)."""

    architecture: str | None = None
    model_type: str | None = None
    params: int | None = None
    dtype: str | None = None
    quantization: str | None = None
    context_length: int | None = None
    num_layers: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    # Bytes of the weight files vLLM loads (a quantized model's real footprint), and the
    # dtypes they store, most elements first ("int32, float16"); `dtype` is what vLLM
    # computes in, `params` the logical count.
    stored_bytes: int | None = None
    storage: str | None = None

    def as_tuple(self) -> tuple[str | int | None, ...]:
        """The fields in declaration order, plain data for the index (`ModelMeta(*t)` back)."""
        values = self.__dict__  # `dataclasses.astuple` deep-copies: 10x slower for nothing
        return tuple([values[name] for name in FIELD_NAMES])


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ModelMeta))

# What a model with no readable files says: shared, as the record is frozen.
NO_META = ModelMeta()
