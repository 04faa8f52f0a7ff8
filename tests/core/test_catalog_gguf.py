"""GGUF quantizations as entries of their own: in a cache repo, in a model folder, by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.fakes import msgen
from tests.fakes.cachegen import (
    FakeRevision,
    commit_hash,
    gguf_bytes,
    llama_gguf_metadata,
    llama_gguf_tensors,
    write_cache_repo,
)

from vllm_console.core.catalog import describe, hfcache, quants
from vllm_console.core.catalog import scan as catalog
from vllm_console.core.catalog.entry import Format, ModelEntry, Source
from vllm_console.core.catalog.index import load_records
from vllm_console.core.catalog.resolve import Rule, resolve

REPO = "org/Tiny-GGUF"
Q4 = gguf_bytes(llama_gguf_metadata(file_type=15, context=4096), llama_gguf_tensors())
Q8 = gguf_bytes(llama_gguf_metadata(file_type=7, context=8192), llama_gguf_tensors()) + b"x" * 99
SHARD = gguf_bytes(llama_gguf_metadata(file_type=1), llama_gguf_tensors(layers=1))
SHARED = {
    "README.md": b"# tiny\n",
    "tokenizer.json": json.dumps({"model": {}}).encode(),
}


def _cache(tmp_path: Path, repo_id: str = REPO) -> Path:
    cache = tmp_path / "hub"
    files: dict[str, bytes] = {
        "tiny-Q4_K_M.gguf": Q4,
        "tiny.Q8_0.gguf": Q8,
        "F16/tiny-F16-00001-of-00002.gguf": SHARD,
        "F16/tiny-F16-00002-of-00002.gguf": SHARD + b"2",
        **SHARED,
    }
    write_cache_repo(cache, repo_id, [FakeRevision(commit_hash(repo_id), files, ("main",))])
    return cache


def _by_id(entries: tuple[ModelEntry, ...]) -> dict[str, ModelEntry]:
    return {e.id: e for e in entries}


def test_cache_repo_lists_each_quantization(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    listed = _by_id(catalog.list_models(cache, []).entries)
    assert sorted(listed) == [f"{REPO}:F16", f"{REPO}:Q4_K_M", f"{REPO}:Q8_0"]
    snapshot = cache / "models--org--Tiny-GGUF" / "snapshots" / commit_hash(REPO)
    assert listed[f"{REPO}:Q8_0"].path == snapshot / "tiny.Q8_0.gguf"
    assert listed[f"{REPO}:F16"].path == snapshot / "F16" / "tiny-F16-00001-of-00002.gguf"
    assert len({e.key for e in listed.values()}) == 3

    entries = _by_id(catalog.scan(cache, []).entries)
    q4, q8, f16 = (entries[f"{REPO}:{q}"] for q in ("Q4_K_M", "Q8_0", "F16"))
    assert q4.format is Format.GGUF and q4.complete, q4.problems
    assert (q4.meta.quantization, q4.meta.context_length) == ("Q4_K_M", 4096)
    assert (q8.meta.quantization, q8.meta.context_length) == ("Q8_0", 8192)
    assert q4.size_bytes == len(Q4) and q8.size_bytes == len(Q8)  # its own files only
    assert q4.meta.params and q4.meta.params == q8.meta.params
    assert f16.meta.dtype == "float16" and f16.size_bytes == 2 * len(SHARD) + 1
    assert f16.files[:2] == ("F16/tiny-F16-00001-of-00002.gguf", "F16/tiny-F16-00002-of-00002.gguf")
    assert any("vLLM loads single-file GGUF only" in n for n in f16.notes)
    for entry in (q4, q8, f16):  # the repo's other files: listed, counted apart
        assert set(SHARED) <= set(entry.files)
        assert any(n.startswith("2 files of the repo") for n in entry.notes), entry.notes
    assert catalog.walk_exact(q4) == q4


def test_cache_quantizations_reuse_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hfcache, "RACY_NS", 0)
    cache = _cache(tmp_path)
    index = tmp_path / "index.pickle"
    first = catalog.scan(cache, [], index_path=index).entries
    assert len(load_records(index) or {}) == 3  # one record per quantization
    monkeypatch.setattr(describe, "read_gguf", _no_reads)
    assert catalog.scan(cache, [], index_path=index).entries == first


def _no_reads(path: str) -> tuple[None, str]:
    raise AssertionError(f"read again: {path}")


def test_repo_not_named_gguf_is_split_by_the_complete_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo_id = "org/tiny-quants"
    cache = _cache(tmp_path, repo_id)
    snapshot = cache / "models--org--tiny-quants" / "snapshots" / commit_hash(repo_id)
    (listed,) = catalog.list_models(cache, []).entries  # the first list reads no snapshot
    assert listed.id == repo_id and listed.path == snapshot
    entries = _by_id(catalog.scan(cache, []).entries)
    assert sorted(entries) == [f"{repo_id}:F16", f"{repo_id}:Q4_K_M", f"{repo_id}:Q8_0"]
    q8 = entries[f"{repo_id}:Q8_0"]
    assert q8.path == snapshot / "tiny.Q8_0.gguf" and q8.source is Source.HF_CACHE
    assert q8.size_bytes == len(Q8) and q8.meta.quantization == "Q8_0" and q8.complete
    assert set(SHARED) <= set(q8.files) and q8.revisions == listed.revisions
    assert entries[f"{repo_id}:F16"].size_bytes == 2 * len(SHARD) + 1
    assert catalog.walk_exact(q8) == q8
    # the details pane may walk the repo before the scan splits it: it says what it holds
    whole = catalog.walk_exact(listed)
    assert any("3 GGUF quantizations (F16, Q4_K_M, Q8_0)" in n for n in whole.notes)
    # live: the quantizations come in the repo's place, and with the index as well
    monkeypatch.setattr(hfcache, "RACY_NS", 0)
    index = tmp_path / "index.pickle"
    live = [e.id for e in catalog.iter_detailed([listed], index_path=index)]
    assert sorted(live) == sorted(entries)
    monkeypatch.setattr(describe, "read_gguf", _no_reads)
    again = {e.id: e for e in catalog.iter_detailed([listed], index_path=index)}
    assert again == entries


def test_one_quantization_is_not_split(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    files = {"tiny-Q4_K_M.gguf": Q4, **SHARED}
    write_cache_repo(cache, "org/one", [FakeRevision(commit_hash("one"), files, ("main",))])
    (entry,) = catalog.scan(cache, []).entries
    assert entry.id == "org/one" and entry.format is Format.GGUF and entry.notes == ()


@pytest.mark.parametrize("layout", msgen.LAYOUTS)
def test_modelscope_repo_is_split_into_quantizations(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "ms"
    files = {"tiny-Q4_K_M.gguf": Q4, "tiny.Q8_0.gguf": Q8, "config.json": b"{}", **SHARED}
    folder = msgen.write_ms_model(
        root, layout, "org/Tiny-1.5B", files, incomplete={"README.md": b"# ti"}
    )
    entries = _by_id(catalog.scan(tmp_path / "no-hf", [], ms_cache=root).entries)
    assert sorted(entries) == ["org/Tiny-1.5B:Q4_K_M", "org/Tiny-1.5B:Q8_0"]
    q4 = entries["org/Tiny-1.5B:Q4_K_M"]
    assert q4.source is Source.MODELSCOPE and q4.path == folder / "tiny-Q4_K_M.gguf"
    assert q4.size_bytes == len(Q4) and q4.meta.quantization == "Q4_K_M"
    assert {"config.json", "tokenizer.json"} <= set(q4.files)
    assert not any(f.startswith(".") for f in q4.files)  # the SDK's markers are not the model's
    assert any("download" in p for p in q4.problems), q4.problems  # README.md is unfinished
    assert quants.home_of(q4) == folder


def test_another_quantizations_unfinished_download_is_its_own(tmp_path: Path) -> None:
    root = tmp_path / "ms"
    files = {"tiny-Q4_K_M.gguf": Q4, "tiny.Q8_0.gguf": Q8}
    msgen.write_ms_model(root, msgen.NEWEST, "org/T", files, incomplete={"tiny-Q2_K.gguf": b"x"})
    entries = _by_id(catalog.scan(tmp_path / "no-hf", [], ms_cache=root).entries)
    assert sorted(entries) == ["org/T:Q4_K_M", "org/T:Q8_0"]
    assert all(e.complete for e in entries.values()), [e.problems for e in entries.values()]


def test_repo_with_safetensors_stays_one_model(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    files = {"model.safetensors": b"\x08" + b"\0" * 7 + b"{}      ", "x-Q4_K_M.gguf": Q4}
    write_cache_repo(cache, "org/Mixed-GGUF", [FakeRevision(commit_hash("m"), files, ("main",))])
    (entry,) = catalog.list_models(cache, []).entries
    assert entry.id == "org/Mixed-GGUF" and entry.path.name == commit_hash("m")


def test_model_folder_with_config_and_quantizations(tmp_path: Path) -> None:
    models = tmp_path / "models"
    repo = models / "org--Tiny-GGUF"
    repo.mkdir(parents=True)
    (repo / "config.json").write_text("{}")
    (repo / "tiny-Q4_K_M.gguf").write_bytes(Q4)
    (repo / "tiny-Q8_0.gguf").write_bytes(Q8)
    (models / "lone-Q4_K_M.gguf").write_bytes(Q4)
    entries = _by_id(catalog.scan(tmp_path / "no-cache", [models]).entries)
    assert sorted(entries) == ["lone-Q4_K_M", "org/Tiny-GGUF:Q4_K_M", "org/Tiny-GGUF:Q8_0"]
    q8 = entries["org/Tiny-GGUF:Q8_0"]
    assert q8.source is Source.FOLDER and q8.path == repo / "tiny-Q8_0.gguf"
    assert q8.size_bytes == len(Q8) and q8.files == ("tiny-Q8_0.gguf", "config.json")
    assert entries["lone-Q4_K_M"].files == ("lone-Q4_K_M.gguf",)  # its neighbours are not its
    assert entries["lone-Q4_K_M"].notes == ()


def test_resolve_names_a_quantization(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    snapshot = cache / "models--org--Tiny-GGUF" / "snapshots" / commit_hash(REPO)
    found = resolve(f"{REPO}:q8_0", hf_cache=cache, model_dirs=[], cwd=tmp_path)
    assert found.rule is Rule.HF_CACHE and found.path == snapshot / "tiny.Q8_0.gguf"
    assert "quantization q8_0: tiny.Q8_0.gguf" in found.reason
    split = resolve(f"{REPO}:F16", hf_cache=cache, model_dirs=[], cwd=tmp_path)
    assert split.path == snapshot / "F16" / "tiny-F16-00001-of-00002.gguf"
    missing = resolve(f"{REPO}:Q2_K", hf_cache=cache, model_dirs=[], cwd=tmp_path)
    assert missing.rule is Rule.NOT_FOUND and "(F16, Q4_K_M, Q8_0)" in missing.reason
    hub = resolve("org/Other-GGUF:Q4_K_M", hf_cache=cache, model_dirs=[], cwd=tmp_path)
    assert hub.needs_download and hub.target == "org/Other-GGUF:Q4_K_M"
    models = tmp_path / "models"
    (models / "org" / "Tiny-GGUF").mkdir(parents=True)
    (models / "org" / "Tiny-GGUF" / "t-Q4_0.gguf").write_bytes(Q4)
    folder = resolve("org/Tiny-GGUF:Q4_0", hf_cache=tmp_path / "x", model_dirs=[models])
    assert folder.rule is Rule.MODEL_DIR and folder.path == models / "org/Tiny-GGUF/t-Q4_0.gguf"
