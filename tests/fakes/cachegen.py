"""Fake Hugging Face caches and model folders, made of real files, for tests and benchmarks.

- `write_cache_repo`: a `models--ORG--NAME` repo laid out like huggingface_hub's cache
  (blobs named by content hash, snapshots of relative symlinks, refs, `.incomplete` blobs);
  `drop_revision` removes a snapshot by hand, leaving its blobs orphaned;
- `write_model_dir`: a plain model folder (config.json plus safetensors/bin weights);
- `safetensors_bytes` / `gguf_bytes`: real headers, written by our own small writers;
- real-shaped config.json dicts (Qwen2.5-7B-Instruct, AWQ, GPTQ, FP8, a multimodal one);
- `build_bench_cache`: N repos x 3 revisions x 20 files, tiny files, for bench/bench_catalog.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# --- safetensors ---------------------------------------------------------------------------

_ST_SIZES = {"BF16": 2, "F16": 2, "F32": 4, "I32": 4, "I8": 1, "U8": 1, "F8_E4M3": 1}

Tensors = Mapping[str, tuple[str, Sequence[int]]]


def count_params(tensors: Tensors) -> int:
    total = 0
    for _, shape in tensors.values():
        n = 1
        for dim in shape:
            n *= dim
        total += n
    return total


def safetensors_bytes(
    tensors: Tensors, metadata: Mapping[str, str] | None = None, with_data: bool = True
) -> bytes:
    """A safetensors file: 8-byte header length, JSON header, then zeroed data (optional)."""
    header: dict[str, object] = {}
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = 1
        for dim in shape:
            n *= dim
        size = n * _ST_SIZES[dtype]
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    data = bytes(offset) if with_data else b""
    return struct.pack("<Q", len(raw)) + raw + data


def llama_tensors(
    hidden: int = 64, layers: int = 2, vocab: int = 256, inter: int = 128, dtype: str = "BF16"
) -> dict[str, tuple[str, list[int]]]:
    """The tensor names and shapes of a small Llama-style model."""
    t: dict[str, tuple[str, list[int]]] = {"model.embed_tokens.weight": (dtype, [vocab, hidden])}
    for i in range(layers):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            t[f"{p}self_attn.{name}.weight"] = (dtype, [hidden, hidden])
        t[f"{p}mlp.gate_proj.weight"] = (dtype, [inter, hidden])
        t[f"{p}mlp.up_proj.weight"] = (dtype, [inter, hidden])
        t[f"{p}mlp.down_proj.weight"] = (dtype, [hidden, inter])
        t[f"{p}input_layernorm.weight"] = (dtype, [hidden])
        t[f"{p}post_attention_layernorm.weight"] = (dtype, [hidden])
    t["model.norm.weight"] = (dtype, [hidden])
    t["lm_head.weight"] = (dtype, [vocab, hidden])
    return t


# --- GGUF ----------------------------------------------------------------------------------

GGUF_UINT8, GGUF_INT32, GGUF_UINT32, GGUF_FLOAT32, GGUF_BOOL = 0, 5, 4, 6, 7
GGUF_STRING, GGUF_ARRAY, GGUF_UINT64, GGUF_INT64 = 8, 9, 10, 11
GGML_F32, GGML_F16, GGML_Q4_K, GGML_Q6_K, GGML_Q8_0 = 0, 1, 12, 14, 8


@dataclass(frozen=True)
class Typed:
    """A GGUF value with an explicit type; a list value is an array of that element type."""

    kind: int
    value: object


def _gguf_str(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def _infer(value: object) -> Typed:
    if isinstance(value, Typed):
        return value
    if isinstance(value, bool):
        return Typed(GGUF_BOOL, value)
    if isinstance(value, int):
        return Typed(GGUF_UINT32 if 0 <= value < 2**32 else GGUF_INT64, value)
    if isinstance(value, float):
        return Typed(GGUF_FLOAT32, value)
    if isinstance(value, str):
        return Typed(GGUF_STRING, value)
    if isinstance(value, list):
        return Typed(GGUF_ARRAY, value)
    raise TypeError(f"no GGUF type for {value!r}")


_PACK = {
    GGUF_UINT8: "<B", GGUF_UINT32: "<I", GGUF_INT32: "<i", GGUF_FLOAT32: "<f",
    GGUF_BOOL: "<?", GGUF_UINT64: "<Q", GGUF_INT64: "<q",
}  # fmt: skip


def _gguf_payload(typed: Typed) -> bytes:
    if typed.kind == GGUF_STRING:
        return _gguf_str(str(typed.value))
    if typed.kind == GGUF_ARRAY or isinstance(typed.value, list):
        items = list(typed.value) if isinstance(typed.value, list) else []
        elem = typed.kind if typed.kind != GGUF_ARRAY else GGUF_UINT32
        if typed.kind == GGUF_ARRAY and items:
            elem = _infer(items[0]).kind
        body = b"".join(_gguf_payload(Typed(elem, v)) for v in items)
        return struct.pack("<IQ", elem, len(items)) + body
    return struct.pack(_PACK[typed.kind], typed.value)


def gguf_bytes(
    metadata: Mapping[str, object],
    tensors: Sequence[tuple[str, Sequence[int], int]],
    version: int = 3,
) -> bytes:
    """A GGUF file's header (metadata then tensor infos) and no tensor data."""
    out = [b"GGUF", struct.pack("<IQQ", version, len(tensors), len(metadata))]
    for key, value in metadata.items():
        typed = _infer(value)
        kind = GGUF_ARRAY if isinstance(typed.value, list) else typed.kind
        out += [_gguf_str(key), struct.pack("<I", kind), _gguf_payload(typed)]
    offset = 0
    for name, dims, ggml_type in tensors:
        out += [_gguf_str(name), struct.pack("<I", len(dims))]
        out += [struct.pack("<Q", d) for d in dims]
        out.append(struct.pack("<IQ", ggml_type, offset))
        offset += 32
    return b"".join(out)


def llama_gguf_metadata(file_type: int = 15, context: int = 4096) -> dict[str, object]:
    return {
        "general.architecture": "llama",
        "general.name": "Tiny Llama",
        "general.file_type": file_type,
        "llama.context_length": context,
        "llama.block_count": 2,
        "llama.embedding_length": 64,
        "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.tokens": [f"tok{i}" for i in range(300)],
        "tokenizer.ggml.token_type": Typed(GGUF_INT32, [1] * 300),
    }


def llama_gguf_tensors(layers: int = 2, hidden: int = 64) -> list[tuple[str, list[int], int]]:
    t = [("token_embd.weight", [hidden, 256], GGML_Q4_K)]
    for i in range(layers):
        t += [(f"blk.{i}.attn_q.weight", [hidden, hidden], GGML_Q4_K)]
        t += [(f"blk.{i}.ffn_down.weight", [128, hidden], GGML_Q6_K)]
        t += [(f"blk.{i}.attn_norm.weight", [hidden], GGML_F32)]
    return t


# --- config.json shapes --------------------------------------------------------------------

QWEN25_7B: dict[str, object] = {
    "architectures": ["Qwen2ForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "hidden_act": "silu",
    "hidden_size": 3584,
    "initializer_range": 0.02,
    "intermediate_size": 18944,
    "max_position_embeddings": 32768,
    "max_window_layers": 28,
    "model_type": "qwen2",
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 131072,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.43.1",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 152064,
}

QWEN25_7B_AWQ = {
    **QWEN25_7B,
    "torch_dtype": "float16",
    "quantization_config": {
        "bits": 4,
        "group_size": 128,
        "modules_to_not_convert": None,
        "quant_method": "awq",
        "version": "gemm",
        "zero_point": True,
    },
}

QWEN25_7B_GPTQ_INT8 = {
    **QWEN25_7B,
    "torch_dtype": "float16",
    "quantization_config": {
        "bits": 8,
        "damp_percent": 0.01,
        "desc_act": False,
        "group_size": 128,
        "quant_method": "gptq",
        "sym": True,
        "true_sequential": True,
    },
}

LLAMA31_8B_FP8: dict[str, object] = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 4096,
    "max_position_embeddings": 131072,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "rope_scaling": {
        "factor": 8.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "torch_dtype": "bfloat16",
    "quantization_config": {"activation_scheme": "static", "quant_method": "fp8"},
    "vocab_size": 128256,
}

GEMMA3_4B_MULTIMODAL: dict[str, object] = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "model_type": "gemma3",
    "text_config": {
        "head_dim": 256,
        "hidden_size": 2560,
        "max_position_embeddings": 131072,
        "model_type": "gemma3_text",
        "num_attention_heads": 8,
        "num_hidden_layers": 34,
        "num_key_value_heads": 4,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
    },
    "torch_dtype": "bfloat16",
    "vision_config": {"hidden_size": 1152, "model_type": "siglip_vision_model"},
}

TINY_LLAMA: dict[str, object] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "max_position_embeddings": 2048,
    "torch_dtype": "bfloat16",
    "vocab_size": 256,
}


# --- model folders -------------------------------------------------------------------------


def write_model_dir(
    path: Path,
    config: Mapping[str, object] | None = TINY_LLAMA,
    weights: str | None = "safetensors",
    shards: int = 1,
    total_parameters: bool = False,
) -> int:
    """A model folder; returns its parameter count. weights: safetensors, bin or None."""
    path.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    (path / "tokenizer_config.json").write_text("{}")
    tensors = llama_tensors()
    if weights == "bin":
        (path / "pytorch_model.bin").write_bytes(b"PK\x03\x04 not really a zip")
    elif weights == "safetensors":
        _write_shards(path, tensors, shards, total_parameters)
    return count_params(tensors)


def _write_shards(path: Path, tensors: Tensors, shards: int, total_parameters: bool) -> None:
    if shards == 1:
        (path / "model.safetensors").write_bytes(safetensors_bytes(tensors, {"format": "pt"}))
        return
    names = list(tensors)
    weight_map: dict[str, str] = {}
    for k in range(shards):
        part = {n: tensors[n] for n in names[k::shards]}
        fname = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        (path / fname).write_bytes(safetensors_bytes(part, {"format": "pt"}))
        weight_map.update(dict.fromkeys(part, fname))
    metadata: dict[str, int] = {"total_size": 2 * count_params(tensors)}
    if total_parameters:
        metadata["total_parameters"] = count_params(tensors)
    index = {"metadata": metadata, "weight_map": weight_map}
    (path / "model.safetensors.index.json").write_text(json.dumps(index))


# --- Hugging Face cache --------------------------------------------------------------------


def commit_hash(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


def blob_name(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@dataclass(frozen=True)
class FakeRevision:
    """One snapshot: its commit, its files (relative name -> bytes), the refs naming it."""

    commit: str
    files: Mapping[str, bytes]
    refs: Sequence[str] = ()
    broken: Sequence[str] = field(default_factory=tuple)  # names linked to a missing blob


def write_cache_repo(
    cache: Path,
    repo_id: str,
    revisions: Sequence[FakeRevision],
    incomplete: int = 0,
    repo_type: str = "models",
) -> Path:
    """A cache repo as huggingface_hub writes it; identical contents share one blob."""
    repo = cache / f"{repo_type}--{repo_id.replace('/', '--')}"
    blobs = repo / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    for rev in revisions:
        snap = repo / "snapshots" / rev.commit
        snap.mkdir(parents=True, exist_ok=True)
        for name, content in rev.files.items():
            blob = blobs / blob_name(content)
            if not blob.exists():
                blob.write_bytes(content)
            _link(snap, name, blob.name)
        for name in rev.broken:
            _link(snap, name, blob_name(name.encode() + b"missing"))
        for ref in rev.refs:
            ref_path = repo / "refs" / ref
            ref_path.parent.mkdir(parents=True, exist_ok=True)
            ref_path.write_text(rev.commit)
    for i in range(incomplete):
        (blobs / f"{blob_name(f'{repo_id}{i}'.encode())}.incomplete").write_bytes(b"partial")
    return repo


def drop_revision(repo: Path, commit: str) -> None:
    """Remove one snapshot folder and the refs naming it, as `rm -rf snapshots/<hash>` would:
    the blobs only it used stay behind, linked from nowhere (orphaned)."""
    shutil.rmtree(repo / "snapshots" / commit)
    for ref in (repo / "refs").rglob("*"):
        if ref.is_file() and ref.read_text() == commit:
            ref.unlink()


def _link(snap: Path, name: str, blob: str) -> None:
    target = snap / name
    target.parent.mkdir(parents=True, exist_ok=True)
    depth = name.count("/")
    if os.path.lexists(target):
        target.unlink()
    os.symlink("../" * (depth + 2) + "blobs/" + blob, target)


# --- the benchmark's cache -----------------------------------------------------------------

BENCH_CHANGED_PER_REVISION = 5


def bench_repo_revisions(index: int, revisions: int = 3, files: int = 20) -> list[FakeRevision]:
    """Revisions of one bench repo: each changes a few files of the one before.

    The last is `main`; every third repo has a PR ref and every fifth a `dev` branch.
    """
    config = json.dumps({**QWEN25_7B, "_name_or_path": f"bench-{index}"}).encode()
    weights = safetensors_bytes(llama_tensors(hidden=3584, layers=4, vocab=152064), with_data=False)
    base: dict[str, bytes] = {"config.json": config, "model.safetensors": weights}
    for k in range(files - len(base)):
        base[f"file_{k:02d}.txt"] = f"repo {index} file {k}".encode()
    out: list[FakeRevision] = []
    current = dict(base)
    for r in range(revisions):
        if r:
            for k in range(BENCH_CHANGED_PER_REVISION):
                name = f"file_{k:02d}.txt"
                current[name] = f"repo {index} file {k} revision {r}".encode()
        refs: list[str] = []
        if r == revisions - 1:
            refs.append("main")
        elif r == 0 and index % 5 == 0:
            refs.append("dev")
        elif index % 3 == 0:
            refs.append(f"refs/pr/{r}")
        out.append(FakeRevision(commit_hash(f"{index}-{r}"), dict(current), tuple(refs)))
    return out


def build_bench_cache(cache: Path, repos: int, revisions: int = 3, files: int = 20) -> Path:
    """`repos` repos x `revisions` x `files` under `cache`; a few have `.incomplete` blobs."""
    cache.mkdir(parents=True, exist_ok=True)
    for i in range(repos):
        repo_id = f"org{i % 50}/model-{i}"
        write_cache_repo(
            cache, repo_id, bench_repo_revisions(i, revisions, files), int(i % 97 == 0)
        )
    return cache
