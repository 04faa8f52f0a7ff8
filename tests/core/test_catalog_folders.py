"""The catalog on model folders: layouts, GGUF files, broken and unreadable things."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.fakes.cachegen import (
    QWEN25_7B_AWQ,
    gguf_bytes,
    llama_gguf_metadata,
    llama_gguf_tensors,
    write_model_dir,
)

from vllm_console.core.catalog import folders
from vllm_console.core.catalog import scan as catalog
from vllm_console.core.catalog.entry import Format, ModelEntry, Source


def _scan(*dirs: Path) -> dict[str, ModelEntry]:
    result = catalog.scan(dirs[0] / "no-cache-here", list(dirs))
    assert result.warnings == ()
    return {e.id: e for e in result.entries}


def _gguf_params() -> int:
    total = 0
    for _, dims, _ in llama_gguf_tensors():
        n = 1
        for d in dims:
            n *= d
        total += n
    return total


def test_layouts(tmp_path: Path) -> None:
    models = tmp_path / "models"
    params = write_model_dir(models / "Qwen--Qwen2.5-7B-Instruct")
    write_model_dir(models / "meta-llama" / "Llama-3.1-8B")
    write_model_dir(models / "plain")
    write_model_dir(models / "Qwen--Qwen2.5-7B-Instruct-AWQ", config=QWEN25_7B_AWQ)
    (models / "not-a-model" / "stuff").mkdir(parents=True)
    (models / "notes.txt").write_text("hi")
    by_id = _scan(models)
    assert set(by_id) == {
        "Qwen/Qwen2.5-7B-Instruct",
        "meta-llama/Llama-3.1-8B",
        "plain",
        "Qwen/Qwen2.5-7B-Instruct-AWQ",
    }
    entry = by_id["Qwen/Qwen2.5-7B-Instruct"]
    assert entry.source is Source.FOLDER and entry.root == models and entry.detailed
    assert entry.path == models / "Qwen--Qwen2.5-7B-Instruct"
    assert entry.format is Format.SAFETENSORS and entry.meta.params == params
    assert entry.problems == () and entry.complete
    assert entry.files == ("config.json", "model.safetensors", "tokenizer_config.json")
    assert entry.size_bytes == sum(f.stat().st_size for f in entry.path.iterdir())
    assert by_id["meta-llama/Llama-3.1-8B"].path == models / "meta-llama" / "Llama-3.1-8B"
    assert by_id["Qwen/Qwen2.5-7B-Instruct-AWQ"].meta.quantization == "AWQ 4-bit"
    # a folder's detail is already exact: walk_exact details a listed entry, returns the rest
    assert entry.exact and catalog.walk_exact(entry) is entry
    listed = {e.id: e for e in catalog.list_models(tmp_path / "no-cache", [models]).entries}
    assert catalog.walk_exact(listed["Qwen/Qwen2.5-7B-Instruct"]) == entry


def test_sharded_with_and_without_total_parameters(tmp_path: Path) -> None:
    params = write_model_dir(tmp_path / "a", shards=3, total_parameters=True)
    write_model_dir(tmp_path / "b", shards=3)
    # an index whose total is a lie shows that the index is preferred when it says so
    index = json.loads((tmp_path / "a" / "model.safetensors.index.json").read_text())
    index["metadata"]["total_parameters"] = 7_615_616_512
    (tmp_path / "a" / "model.safetensors.index.json").write_text(json.dumps(index))
    by_id = _scan(tmp_path)
    assert by_id["a"].meta.params == 7_615_616_512
    assert by_id["b"].meta.params == params and by_id["b"].meta.dtype == "bfloat16"


def test_bin_only_missing_config_missing_weights_bad_json(tmp_path: Path) -> None:
    write_model_dir(tmp_path / "bin", weights="bin")
    write_model_dir(tmp_path / "noconfig", config=None)
    write_model_dir(tmp_path / "noweights", weights=None)
    write_model_dir(tmp_path / "badjson")
    (tmp_path / "badjson" / "config.json").write_text('{"architectures": [')
    write_model_dir(tmp_path / "badheader")
    (tmp_path / "badheader" / "model.safetensors").write_bytes(b"\xff" * 8 + b"{}")
    by_id = _scan(tmp_path)
    assert by_id["bin"].format is Format.BIN and by_id["bin"].meta.params is None
    assert by_id["bin"].problems == () and by_id["bin"].meta.architecture == "LlamaForCausalLM"
    assert by_id["noconfig"].problems == ("no config.json",)
    assert by_id["noconfig"].meta.params is not None
    assert by_id["noweights"].problems == ("no weights",)
    assert by_id["badjson"].problems[0].startswith("unreadable config.json: invalid JSON")
    assert by_id["badheader"].problems[0].startswith("bad safetensors header: model.safetensors")


def test_broken_symlink_and_hardlinks_count_once(tmp_path: Path) -> None:
    model = tmp_path / "m"
    write_model_dir(model)
    os.symlink(tmp_path / "gone.safetensors", model / "model-2.safetensors")
    os.link(model / "model.safetensors", model / "copy.bin.bak")
    entry = _scan(tmp_path)["m"]
    assert entry.problems == ("broken link: model-2.safetensors",)
    expected = sum(
        f.stat().st_size for f in model.iterdir() if f.exists() and f.name != "copy.bin.bak"
    )
    assert entry.size_bytes == expected


def test_incomplete_local_dir_download(tmp_path: Path) -> None:
    model = tmp_path / "m"
    write_model_dir(model)
    download = model / ".cache" / "huggingface" / "download"
    download.mkdir(parents=True)
    (download / "abc.incomplete").write_bytes(b"x")
    entry = _scan(tmp_path)["m"]
    assert entry.problems == ("incomplete download (1 .incomplete files)",)
    assert not any(f.startswith(".cache") for f in entry.files)


def test_gguf_files(tmp_path: Path) -> None:
    header = gguf_bytes(llama_gguf_metadata(), llama_gguf_tensors())
    (tmp_path / "tiny-llama-Q4_K_M.gguf").write_bytes(header)
    for k in (1, 2):
        (tmp_path / f"split-Q8_0-{k:05d}-of-00003.gguf").write_bytes(header)
    (tmp_path / "garbage.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 40)
    ggufdir = tmp_path / "TheBloke--Tiny-GGUF"
    ggufdir.mkdir()
    (ggufdir / "tiny.Q6_K.gguf").write_bytes(gguf_bytes(llama_gguf_metadata(file_type=18), []))
    by_id = _scan(tmp_path)
    tiny = by_id["tiny-llama-Q4_K_M"]
    assert tiny.format is Format.GGUF and tiny.path == tmp_path / "tiny-llama-Q4_K_M.gguf"
    meta = tiny.meta
    assert meta.quantization == "Q4_K_M" and meta.architecture == "llama"
    assert meta.context_length == 4096 and meta.num_layers == 2 and meta.num_kv_heads == 2
    assert meta.head_dim == 16 and meta.params == _gguf_params() and tiny.complete
    split = by_id["split-Q8_0"]
    assert split.meta.params == 2 * _gguf_params() and split.meta.quantization == "Q8_0"
    assert split.problems == ("missing GGUF shards: 3 of 3",)
    assert split.files == ("split-Q8_0-00001-of-00003.gguf", "split-Q8_0-00002-of-00003.gguf")
    assert by_id["garbage"].problems[0].startswith("bad GGUF header: garbage.gguf")
    assert by_id["TheBloke/Tiny-GGUF"].meta.quantization == "Q6_K"


def test_missing_folders_are_silent_unreadable_ones_warn(tmp_path: Path) -> None:
    result = catalog.scan(tmp_path / "no-cache", [tmp_path / "a", tmp_path / "b"])
    assert result.entries == () and result.warnings == ()
    assert result.looked_in == (tmp_path / "no-cache", tmp_path / "a", tmp_path / "b")
    if os.geteuid() == 0:
        pytest.skip("root reads folders whatever their mode")
    locked = tmp_path / "locked"
    write_model_dir(tmp_path / "models" / "secret")
    locked.mkdir()
    (tmp_path / "models" / "secret").chmod(0)
    locked.chmod(0)
    try:
        result = catalog.scan(tmp_path / "no-cache", [locked, tmp_path / "models"])
    finally:
        locked.chmod(0o755)
        (tmp_path / "models" / "secret").chmod(0o755)
    assert result.warnings[0].startswith(f"unreadable folder: {locked}")
    (secret,) = result.entries
    assert secret.problems[0].startswith("unreadable folder")


def test_detail_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_model_dir(tmp_path / "m")
    (entry,) = catalog.list_models(tmp_path / "x", [tmp_path]).entries

    def boom(*_: object) -> object:
        raise RuntimeError("surprise")

    monkeypatch.setattr(folders, "walk_folder", boom)
    detailed = catalog.detail(entry)
    assert detailed.detailed and detailed.problems == ("could not read: RuntimeError: surprise",)


def test_unreadable_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same as above, for root too: scandir and listdir refuse two folders."""
    locked = tmp_path / "locked"
    locked.mkdir()
    secret = tmp_path / "models" / "secret"
    write_model_dir(secret)
    real_scandir, real_listdir = os.scandir, os.listdir
    refused = {str(locked), str(secret)}

    def scandir(path: object = ".") -> object:
        if str(path) in refused:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[call-overload]

    def listdir(path: object = ".") -> object:
        if str(path) in refused:
            raise PermissionError(13, "Permission denied", str(path))
        return real_listdir(path)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "listdir", listdir)
    result = catalog.scan(tmp_path / "no-cache", [locked, tmp_path / "models"])
    assert result.warnings == (f"unreadable folder: {locked}: Permission denied",)
    (entry,) = result.entries
    assert entry.id == "secret" and entry.problems == ("unreadable folder: Permission denied",)
