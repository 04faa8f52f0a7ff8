"""The ModelScope cache as a catalog source, on generated caches, checked against the
`modelscope` library itself.

The library's `scan_cache_dir()` understands the two flat layouts only: given the root it
reads `models/ORG/NAME` (and `ORG/NAME`), given `root/hub` it reads `hub/models/ORG/NAME` and
`hub/ORG/NAME`; a repo of the newest layout (`models/ORG--NAME/snapshots/REV`) has no `.mdl`
and is skipped. Those repos are compared with the library's repo-grain `scan_cache()`, which
reads the newest layout (and misnames the flat ones: it keeps `___` and counts the markers).
"""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path

import pytest
from modelscope.hub.cache_manager import scan_cache, scan_cache_dir
from tests.fakes.cachegen import FakeRevision, commit_hash, write_cache_repo
from tests.fakes.msgen import FLAT, FLAT_SET, NEWEST, OLDEST, model_files, write_ms_model

from vllm_console.config import load_settings
from vllm_console.core.catalog import msmodel
from vllm_console.core.catalog import scan as catalog
from vllm_console.core.catalog.entry import Format, ModelEntry, Source
from vllm_console.core.catalog.resolve import Rule, resolve

NO_HF = Path("/nonexistent/hf")


def _truth_cache(root: Path) -> None:
    write_ms_model(root, OLDEST, "damo/nlp_bert-base", model_files("old"))
    write_ms_model(root, FLAT, "Qwen/Qwen2.5-7B-Instruct", model_files("flat", 6))
    nested = {**model_files("set"), "original/params.json": b"{}"}
    write_ms_model(root, FLAT_SET, "Qwen/Qwen2.5-0.5B", nested, revision="v1.0.1")
    write_ms_model(root, NEWEST, "Qwen/Qwen3-8B", model_files("new", 5))
    write_ms_model(root, NEWEST, "org/Two.Dots-1.5B", model_files("new2"))


def _ours(root: Path) -> dict[str, ModelEntry]:
    entries = catalog.scan(NO_HF, [], ms_cache=root).entries
    assert all(e.source is Source.MODELSCOPE and e.detailed for e in entries)
    return {e.id: e for e in entries}


def test_truth_matches_the_library(tmp_path: Path) -> None:
    """Ids (dots restored), paths, sizes and revisions, layout by layout."""
    _truth_cache(tmp_path)
    ours = _ours(tmp_path)
    flat = [*scan_cache_dir(tmp_path).repos, *scan_cache_dir(tmp_path / "hub").repos]
    assert len(flat) == 3
    for repo in flat:
        entry = ours.pop(repo.repo_id)
        assert entry.path == repo.repo_path
        assert entry.size_bytes == repo.size_on_disk, repo.repo_id
        assert len(entry.files) == repo.nb_files
        (revision,) = repo.revisions
        assert [r.commit for r in entry.revisions] == [revision.commit_hash]
        assert entry.revisions[0].size_bytes == revision.size_on_disk
    newest = {r.repo_id: r for r in scan_cache(tmp_path).repos if "--" in r.local_path}
    assert set(ours) == set(newest) == {"Qwen/Qwen3-8B", "org/Two.Dots-1.5B"}
    for repo_id, repo in newest.items():
        entry = ours[repo_id]
        assert str(entry.path.parent.parent) == repo.local_path
        assert entry.size_bytes == repo.size_on_disk and len(entry.files) == repo.nb_files
        assert [r.commit for r in entry.revisions] == [repo.revision]


def test_metadata_like_any_entry(tmp_path: Path) -> None:
    _truth_cache(tmp_path)
    for entry in _ours(tmp_path).values():
        assert entry.complete and entry.format is Format.SAFETENSORS, entry
        assert entry.meta.architecture == "Qwen2ForCausalLM" and entry.meta.params
        assert entry.meta.context_length == 32768 and entry.meta.dtype == "bfloat16"
        assert not {".mdl", ".msc", ".mv"} & set(entry.files)
        assert entry.found_how == f"ModelScope cache at {tmp_path}"
        assert entry.weight_files == ("model.safetensors",)  # what vLLM loads, as for others


def test_unfinished_downloads_and_missing_weights(tmp_path: Path) -> None:
    part = {"model.safetensors": b"half"}
    files = model_files("x")
    write_ms_model(tmp_path, NEWEST, "a/new", files, incomplete=part)
    write_ms_model(tmp_path, FLAT, "a/flat", files, incomplete=part)
    write_ms_model(tmp_path, OLDEST, "a/old", files, incomplete=part)
    write_ms_model(tmp_path, FLAT_SET, "a/noweights", {"config.json": files["config.json"]})
    ours = _ours(tmp_path)
    assert ours["a/new"].problems == ("incomplete download (1 .incomplete files)",)
    assert ours["a/new"].size_bytes == ours["a/flat"].size_bytes  # the partial file is not sized
    assert "model.safetensors.incomplete" not in ours["a/new"].files
    for repo_id in ("a/flat", "a/old"):
        assert ours[repo_id].problems == ("download in progress (1 files in ._____temp)",)
    assert ours["a/noweights"].problems == ("no weights",)


def test_folders_the_sdk_did_not_write_are_not_models(tmp_path: Path) -> None:
    (tmp_path / "hub" / "someone" / "stuff").mkdir(parents=True)
    (tmp_path / "hub" / "someone" / "stuff" / "config.json").write_text("{}")
    (tmp_path / "ast_indexer").write_text("not a folder")
    write_ms_model(tmp_path, OLDEST, "real/one", model_files("r"))
    assert list(_ours(tmp_path)) == ["real/one"]


def test_the_mdl_marker_is_never_unpickled_into_code(tmp_path: Path) -> None:
    folder = write_ms_model(tmp_path, FLAT, "org/model", model_files("m"))
    canary = tmp_path / "ran"
    (folder / ".mdl").write_bytes(b"cos\nsystem\n(S'touch " + str(canary).encode() + b"'\ntR.")
    (entry,) = _ours(tmp_path).values()
    assert not canary.exists() and entry.id == "org/model" and entry.notes == ()
    (folder / ".mdl").write_bytes(pickle.dumps({"id": "org/other___name"}))
    (entry,) = _ours(tmp_path).values()
    assert entry.notes == ("its .mdl marker names it org/other.name",)
    assert msmodel.parse_mdl(pickle.dumps(["org/model"])) is None


def test_the_mdl_id_is_read_as_the_sdk_reads_it() -> None:
    from modelscope.hub.utils.caching import ModelFileSystemCache

    for given in ("Org___X/Qwen2___5", "org/name", "a______b/c"):
        marker = pickle.dumps({ModelFileSystemCache.MODEL_META_MODEL_ID: given})
        # the SDK's cache scan: `cache.get_model_id().replace('___', '.')`
        assert msmodel.parse_mdl(marker) == given.replace("___", ".")


def test_same_model_in_both_caches_is_listed_twice(tmp_path: Path) -> None:
    hf = tmp_path / "hf"
    ms = tmp_path / "ms"
    write_cache_repo(hf, "Qwen/Qwen3-8B", [FakeRevision(commit_hash("q"), model_files("h"))])
    write_ms_model(ms, NEWEST, "Qwen/Qwen3-8B", model_files("m"))
    result = catalog.list_models(hf, [], ms)
    assert [(e.id, e.source) for e in result.entries] == [
        ("Qwen/Qwen3-8B", Source.HF_CACHE),
        ("Qwen/Qwen3-8B", Source.MODELSCOPE),
    ]
    assert result.looked_in == (hf, ms)


def test_the_index_reuses_a_model_until_it_changes(tmp_path: Path) -> None:
    root = tmp_path / "ms"
    index = tmp_path / "index.pickle"
    folder = write_ms_model(root, FLAT, "org/model", model_files("m"))
    snapshot = write_ms_model(root, NEWEST, "org/new", model_files("n"))
    _age(root)
    first = catalog.scan(NO_HF, [], ms_cache=root, index_path=index).entries
    again = catalog.scan(NO_HF, [], ms_cache=root, index_path=index).entries
    assert again == first and [e.config for e in again] == [e.config for e in first]
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 1024}))
    (snapshot / "extra.bin.incomplete").write_bytes(b"x")
    (folder / ".mv").write_text("Revision:v2,CreatedAt:1")
    changed = {e.id: e for e in catalog.scan(NO_HF, [], ms_cache=root, index_path=index).entries}
    assert changed["org/model"].meta.context_length == 1024
    assert changed["org/model"].revisions[0].commit == "v2"
    assert changed["org/new"].problems == ("incomplete download (1 .incomplete files)",)


def _age(root: Path) -> None:
    """Date every file and folder back a minute, out of the index's racy window."""
    old = time.time() - 60
    for path in [root, *root.rglob("*")]:
        os.utime(path, (old, old))


def test_settings_honour_modelscope_cache(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert load_settings(environ={}, home=home, cwd=tmp_path).modelscope_cache == (
        home / ".cache" / "modelscope"
    )
    given = load_settings(environ={"MODELSCOPE_CACHE": "/data/ms"}, home=home, cwd=tmp_path)
    assert given.modelscope_cache == Path("/data/ms")
    assert given.origin("MODELSCOPE_CACHE") == "environment"


@pytest.mark.parametrize("layout", [OLDEST, FLAT, FLAT_SET, NEWEST])
def test_resolve_finds_each_layout_after_the_hf_cache(tmp_path: Path, layout: str) -> None:
    ms = tmp_path / "ms"
    folder = write_ms_model(ms, layout, "Qwen/Qwen2.5-7B", model_files("r"))
    found = resolve("Qwen/Qwen2.5-7B", hf_cache=NO_HF, model_dirs=[], cwd=tmp_path, ms_cache=ms)
    assert found.rule is Rule.MODELSCOPE_CACHE and found.path == folder
    assert found.to_json()["rule"] == "modelscope-cache" and "ModelScope" in found.reason
    assert [a.rule for a in found.tried][:2] == [Rule.PATH, Rule.HF_CACHE]
    hf = tmp_path / "hf"
    write_cache_repo(hf, "Qwen/Qwen2.5-7B", [FakeRevision(commit_hash("h"), {}, ("main",))])
    first = resolve("Qwen/Qwen2.5-7B", hf_cache=hf, model_dirs=[], cwd=tmp_path, ms_cache=ms)
    assert first.rule is Rule.HF_CACHE


def test_resolve_prefers_the_cache_to_model_folders_and_falls_back_to_the_hub(
    tmp_path: Path,
) -> None:
    ms = tmp_path / "ms"
    models = tmp_path / "models"
    (models / "Qwen" / "Qwen3-8B").mkdir(parents=True)
    write_ms_model(ms, NEWEST, "Qwen/Qwen3-8B", model_files("r"))
    kwargs = {"hf_cache": NO_HF, "model_dirs": [models], "cwd": tmp_path, "ms_cache": ms}
    assert resolve("Qwen/Qwen3-8B", **kwargs).rule is Rule.MODELSCOPE_CACHE  # type: ignore[arg-type]
    missing = resolve("Qwen/Nowhere-1B", **kwargs)  # type: ignore[arg-type]
    assert missing.rule is Rule.HUB and missing.needs_download
    assert Rule.MODELSCOPE_CACHE in {a.rule for a in missing.tried}


def test_models_command_shows_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vllm_console.cli import main

    for name in list(os.environ):
        if name.startswith(("VLLM_", "HF_", "XDG_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    monkeypatch.chdir(tmp_path)
    write_ms_model(tmp_path / "ms", FLAT, "Qwen/Qwen2.5-7B", model_files("c"))
    assert main(["models", "--json"]) == 0
    (data,) = json.loads(capsys.readouterr().out)
    assert (data["id"], data["source"], data["complete"]) == ("Qwen/Qwen2.5-7B", "modelscope", True)
    assert main(["models"]) == 0
    assert "modelscope" in capsys.readouterr().out
