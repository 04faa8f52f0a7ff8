"""Shared fixtures: no cursor blink, Settings in a temp dir, model folders, a fake catalog."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from vllm_console.config import Settings
from vllm_console.core.catalog.entry import Format, ModelEntry, Revision, Source
from vllm_console.core.catalog.meta import FIELD_NAMES, ModelMeta

GiB = 1024**3

# Stand-ins (tests/fakes/fake_vllm.py) started from here, however deep, exit when this test
# process is gone: a killed run leaves none to be found by the next one's "servers left from
# earlier runs".
os.environ["FAKE_VLLM_WATCH_PID"] = str(os.getpid())


@pytest.fixture(autouse=True)
def _no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blinking cursor makes screenshots and timings depend on when they were taken."""
    monkeypatch.setattr(Input, "cursor_blink", False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose every folder lies in tmp_path: a fake HOME, cwd and HF cache."""
    for name in ("home", "cwd", "hub", "models"):
        (tmp_path / name).mkdir()
    return Settings(
        hf_hub_cache_override=tmp_path / "hub",
        home=tmp_path / "home",
        cwd=tmp_path / "cwd",
        extra_model_dirs=(tmp_path / "models",),
    )


def write_model_folder(folder: Path, *, layers: int = 2, context: int = 4096) -> Path:
    """A small but real model folder: config.json and one tiny safetensors file."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "hidden_size": 128,
        "max_position_embeddings": context,
        "torch_dtype": "bfloat16",
    }
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}})
    data = struct.pack("<Q", len(header)) + header.encode() + bytes(8)
    (folder / "model.safetensors").write_bytes(data)
    return folder


@dataclass(frozen=True)
class FakeScan:
    entries: tuple[ModelEntry, ...]
    warnings: tuple[str, ...] = ()
    looked_in: tuple[Path, ...] = ()


class FakeCatalog:
    """Lists entries undetailed, then details them; `gate` holds the details back."""

    def __init__(
        self,
        entries: Iterable[ModelEntry],
        *,
        warnings: Sequence[str] = (),
        looked_in: Sequence[Path] = (),
    ) -> None:
        self.entries = list(entries)
        self.warnings = tuple(warnings)
        self.looked_in = tuple(looked_in)
        self.gate = threading.Event()
        self.gate.set()
        self.scans = 0

    def list_models(
        self, hf_cache: Path, model_dirs: Sequence[Path], ms_cache: Path | None = None
    ) -> FakeScan:
        self.scans += 1
        listed = tuple(undetailed(entry) for entry in self.entries)
        return FakeScan(listed, self.warnings, self.looked_in or (hf_cache, *model_dirs))

    def detail(self, entry: ModelEntry) -> ModelEntry:
        self.gate.wait(10)
        return next(e for e in self.entries if e.key == entry.key)


def undetailed(entry: ModelEntry) -> ModelEntry:
    return ModelEntry(
        id=entry.id,
        path=entry.path,
        source=entry.source,
        root=entry.root,
        revisions=tuple(replace(r, size_bytes=None) for r in entry.revisions),
    )


CACHE = Path("/home/you/.cache/huggingface/hub")
MODELS = Path("/home/you/models")


def cache_entry(repo: str, **fields: object) -> ModelEntry:
    folder = CACHE / f"models--{repo.replace('/', '--')}"
    commit = hashlib.sha1(repo.encode()).hexdigest()  # fixed, so screenshots do not change
    size = fields.get("size_bytes")
    revision = Revision(
        commit,
        folder / "snapshots" / commit,
        ("main",),
        size_bytes=size if isinstance(size, int) else None,
    )
    return _entry(
        repo, folder / "snapshots" / commit, Source.HF_CACHE, CACHE, (revision,), **fields
    )


def folder_entry(name: str, **fields: object) -> ModelEntry:
    return _entry(name, MODELS / name.split("/")[-1], Source.FOLDER, MODELS, (), **fields)


def _entry(
    id: str,
    path: Path,
    source: Source,
    root: Path,
    revisions: tuple[Revision, ...],
    **fields: object,
) -> ModelEntry:
    defaults: dict[str, object] = {
        "format": Format.SAFETENSORS,
        "architecture": "LlamaForCausalLM",
        "model_type": "llama",
        "dtype": "bfloat16",
        "num_layers": 32,
        "num_kv_heads": 8,
        "head_dim": 128,
        "files": (
            "config.json",
            "generation_config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ),
        "detailed": True,
    }
    defaults.update(fields)
    # The demo lists metadata (params=..., dtype=...) beside the entry's own fields.
    meta: dict[str, Any] = {name: defaults.pop(name) for name in FIELD_NAMES if name in defaults}
    fields_any: dict[str, Any] = defaults
    return ModelEntry(
        id=id,
        path=path,
        source=source,
        root=root,
        revisions=revisions,
        meta=ModelMeta(**meta),
        **fields_any,
    )


def demo_entries() -> list[ModelEntry]:
    """A fixed, plausible set of models: the snapshot and the README screenshot use it."""
    return [
        cache_entry(
            "Qwen/Qwen2.5-7B-Instruct",
            architecture="Qwen2ForCausalLM",
            model_type="qwen2",
            params=7_615_616_512,
            context_length=32768,
            num_layers=28,
            num_kv_heads=4,
            size_bytes=int(14.2 * GiB),
        ),
        cache_entry(
            "meta-llama/Llama-3.1-8B-Instruct",
            params=8_030_261_248,
            context_length=131072,
            size_bytes=int(15.0 * GiB),
        ),
        folder_entry(
            "mistralai/Mistral-7B-Instruct-v0.3",
            architecture="MistralForCausalLM",
            model_type="mistral",
            params=7_248_023_552,
            context_length=32768,
            size_bytes=int(13.5 * GiB),
        ),
        folder_entry(
            "Qwen2.5-32B-Instruct-AWQ",
            architecture="Qwen2ForCausalLM",
            model_type="qwen2",
            params=32_763_876_352,
            context_length=32768,
            num_layers=64,
            quantization="awq",
            dtype="float16",
            size_bytes=int(18.3 * GiB),
        ),
        cache_entry(
            "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
            params=1_100_048_384,
            context_length=2048,
            num_layers=22,
            num_kv_heads=4,
            head_dim=64,
            size_bytes=int(2.05 * GiB),
        ),
        cache_entry(
            "google/gemma-2-9b-it",
            architecture="Gemma2ForCausalLM",
            model_type="gemma2",
            params=9_241_705_984,
            context_length=8192,
            num_layers=42,
            head_dim=256,
            size_bytes=int(17.2 * GiB),
        ),
        folder_entry(
            "DeepSeek-R1-Distill-Qwen-14B",
            architecture="Qwen2ForCausalLM",
            model_type="qwen2",
            params=14_770_033_664,
            context_length=131072,
            num_layers=48,
            size_bytes=int(9.1 * GiB),
            problems=("2 of 4 weight shards missing (incomplete download?)",),
        ),
        folder_entry(
            "my-finetune",
            format=Format.UNKNOWN,
            architecture=None,
            model_type=None,
            dtype=None,
            num_layers=None,
            num_kv_heads=None,
            head_dim=None,
            size_bytes=int(0.4 * GiB),
            files=("adapter_model.safetensors",),
            problems=("no config.json", "no weights vLLM can load"),
        ),
    ]


# Fixtures rather than imports: test folders are not packages, so helpers travel as fixtures.


@pytest.fixture
def fake_catalog() -> type[FakeCatalog]:
    return FakeCatalog


@pytest.fixture
def demo_catalog() -> FakeCatalog:
    return FakeCatalog(demo_entries())


@pytest.fixture
def demo_models() -> list[ModelEntry]:
    return demo_entries()


@pytest.fixture
def make_folder_entry() -> Callable[..., ModelEntry]:
    return folder_entry


@pytest.fixture
def model_folder() -> Callable[..., Path]:
    return write_model_folder
