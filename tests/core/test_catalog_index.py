"""The catalog index: a fresh process reuses the last complete scan, and stays truthful."""

from __future__ import annotations

import json
import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir
from tests.fakes.cachegen import (
    QWEN25_7B,
    FakeRevision,
    blob_name,
    build_bench_cache,
    commit_hash,
    gguf_bytes,
    llama_gguf_metadata,
    llama_gguf_tensors,
    llama_tensors,
    safetensors_bytes,
    write_cache_repo,
    write_model_dir,
)

from vllm_console.core.catalog import describe, hfcache, hfwalk
from vllm_console.core.catalog import index as catalog_index
from vllm_console.core.catalog import scan as catalog
from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.core.catalog.readers import safetensors as weights
from vllm_console.core.catalog.readers import weightfiles

Counts = dict[str, int]


def _files(tag: str, **extra: bytes) -> dict[str, bytes]:
    return {
        "config.json": json.dumps({**QWEN25_7B, "_name_or_path": tag}).encode(),
        "model.safetensors": safetensors_bytes(llama_tensors(), {"format": "pt"}),
        "README.md": f"# {tag}".encode(),
        **extra,
    }


def _build(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(hub cache, model folder, index path): repos with refs, PRs, nested files, incomplete
    blobs, no snapshot; model folders with safetensors, shards, GGUF."""
    hub, models = tmp_path / "hub", tmp_path / "models"
    a = _files("a")
    b = {**a, "README.md": b"# b", "original/params.json": b"{}"}
    write_cache_repo(
        hub,
        "Qwen/Qwen2.5-7B",
        [
            FakeRevision(commit_hash("q1"), a, ("refs/pr/1",)),
            FakeRevision(commit_hash("q2"), b, ("main",)),
        ],
        incomplete=1,
    )
    write_cache_repo(hub, "org/solo", [FakeRevision(commit_hash("s"), _files("s"), ("main",))])
    write_cache_repo(hub, "org/no-refs", [FakeRevision(commit_hash("n"), _files("n"))])
    broken = FakeRevision(commit_hash("x"), _files("x"), ("main",), broken=("gone.bin",))
    write_cache_repo(hub, "org/broken", [broken])
    (hub / "models--org--nosnap" / "refs").mkdir(parents=True)
    write_model_dir(models / "Org--Folder")
    write_model_dir(models / "config-only", weights=None)
    write_model_dir(models / "sharded", shards=2, total_parameters=True)
    (models / "tiny-Q4_K_M.gguf").write_bytes(
        gguf_bytes(llama_gguf_metadata(), llama_gguf_tensors())
    )
    return hub, models, tmp_path / "state" / "vllm-console" / catalog_index.INDEX_NAME


@pytest.fixture
def trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust stamps however new (the cache was written just now); see `_tick`."""
    monkeypatch.setattr(hfcache, "RACY_NS", 0)


def _tick() -> None:
    """Let the file system's clock move on, so that a change gets a new mtime/ctime (with
    RACY_NS 0 a change within the same tick as the scan would go unseen: the racy case)."""
    time.sleep(0.05)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counts:
    """How often the catalog reads snapshots, blobs, config.json and weight headers."""
    counts: Counts = {}

    def counting(module: object, name: str) -> None:
        real: Callable[..., object] = getattr(module, name)

        def wrapper(*args: object, **kwargs: object) -> object:
            counts[name] = counts.get(name, 0) + 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    counting(hfwalk, "_read_snapshot")
    counting(hfwalk, "_scan_blobs")
    counting(describe, "load_json")
    counting(describe, "read_gguf")
    counting(weightfiles, "load_json")
    counting(weights, "_read_header")
    counting(hfcache, "read_ref")
    return counts


def _scan(hub: Path, models: Path, index: Path | None = None) -> tuple[ModelEntry, ...]:
    """A complete scan as a fresh process does it: nothing remembered in memory."""
    catalog.clear_memos()
    return catalog.scan(hub, [models], index_path=index).entries


def _same(ours: tuple[ModelEntry, ...], truth: tuple[ModelEntry, ...]) -> None:
    assert ours == truth
    assert [e.config for e in ours] == [e.config for e in truth]


def test_warm_index_reads_no_file(tmp_path: Path, trusted: None, reads: Counts) -> None:
    hub, models, index = _build(tmp_path)
    truth = _scan(hub, models)
    _same(_scan(hub, models, index), truth)
    assert index.is_file() and reads["load_json"] > 0
    mtime = index.stat().st_mtime_ns
    reads.clear()
    catalog.list_models(hub, [models])
    listing = reads.pop("read_ref")  # each repo's refs/main, which the first list reads
    _same(_scan(hub, models, index), truth)
    # folders are walked (cheap) but no config, header, snapshot, blob list or other ref is
    # read again; org/nosnap has no blobs folder: not indexed, its (failing) blob listing
    # costs one open
    assert reads == {"_scan_blobs": 1, "read_ref": listing}
    assert index.stat().st_mtime_ns == mtime  # nothing changed: not rewritten


def _add_revision(hub: Path, models: Path) -> None:
    new = FakeRevision(commit_hash("q3"), _files("c"), ("main",))
    write_cache_repo(hub, "Qwen/Qwen2.5-7B", [new])


def _add_blob(hub: Path, models: Path) -> None:
    (hub / "models--org--solo" / "blobs" / blob_name(b"orphan")).write_bytes(b"orphan")


def _move_main(hub: Path, models: Path) -> None:
    (hub / "models--Qwen--Qwen2.5-7B" / "refs" / "main").write_text(commit_hash("q1"))


def _rewrite_pr_ref(hub: Path, models: Path) -> None:
    (hub / "models--Qwen--Qwen2.5-7B" / "refs" / "refs" / "pr" / "1").write_text(commit_hash("q2"))


def _add_pr_ref(hub: Path, models: Path) -> None:
    (hub / "models--Qwen--Qwen2.5-7B" / "refs" / "refs" / "pr" / "2").write_text(commit_hash("q1"))


def _complete_incomplete(hub: Path, models: Path) -> None:
    blobs = hub / "models--Qwen--Qwen2.5-7B" / "blobs"
    (partial,) = blobs.glob("*.incomplete")
    partial.write_bytes(b"now complete, and longer")
    partial.rename(partial.with_suffix(""))


def _link_in_nested_folder(hub: Path, models: Path) -> None:
    """A link to an existing blob, in a snapshot subfolder: only that folder changes."""
    snap = hub / "models--Qwen--Qwen2.5-7B" / "snapshots" / commit_hash("q2")
    os.symlink(f"../../../blobs/{blob_name(b'# b')}", snap / "original" / "again.md")


def _break_config_link(hub: Path, models: Path) -> None:
    snap = hub / "models--org--solo" / "snapshots" / commit_hash("s")
    (snap / "config.json").unlink()
    os.symlink("../../blobs/" + blob_name(b"nowhere"), snap / "config.json")


def _edit_folder_config(hub: Path, models: Path) -> None:
    config = models / "Org--Folder" / "config.json"
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "max_position_embeddings": 8192}))


def _rewrite_folder_weights(hub: Path, models: Path) -> None:
    shard = models / "sharded" / "model.safetensors.index.json"
    data = json.loads(shard.read_text())
    data["metadata"]["total_parameters"] = 12345
    shard.write_text(json.dumps(data))


def _rewrite_gguf(hub: Path, models: Path) -> None:
    meta = llama_gguf_metadata(context=8192)
    (models / "tiny-Q4_K_M.gguf").write_bytes(gguf_bytes(meta, llama_gguf_tensors()))


def _add_weights(hub: Path, models: Path) -> None:
    """No file read changes, but the format does (and "no weights" goes)."""
    (models / "config-only" / "pytorch_model.bin").write_bytes(b"PK not really a zip")


def _add_empty_snapshot(hub: Path, models: Path) -> None:
    """Only `snapshots/` changes: a revision the first list does not name."""
    (hub / "models--Qwen--Qwen2.5-7B" / "snapshots" / commit_hash("q9")).mkdir()


def _remove_other_snapshot(hub: Path, models: Path) -> None:
    import shutil

    shutil.rmtree(hub / "models--Qwen--Qwen2.5-7B" / "snapshots" / commit_hash("q1"))


def _delete_repo(hub: Path, models: Path) -> None:
    import shutil

    shutil.rmtree(hub / "models--org--no-refs")


CHANGES: list[Callable[[Path, Path], None]] = [
    _add_revision,
    _add_blob,
    _move_main,
    _rewrite_pr_ref,
    _add_pr_ref,
    _complete_incomplete,
    _link_in_nested_folder,
    _break_config_link,
    _edit_folder_config,
    _rewrite_folder_weights,
    _rewrite_gguf,
    _add_weights,
    _add_empty_snapshot,
    _remove_other_snapshot,
    _delete_repo,
]


@pytest.mark.parametrize("change", CHANGES, ids=lambda f: f.__name__.strip("_"))
def test_a_change_is_seen(
    tmp_path: Path, trusted: None, change: Callable[[Path, Path], None]
) -> None:
    hub, models, index = _build(tmp_path)
    before = _scan(hub, models, index)
    _tick()
    change(hub, models)
    truth = _scan(hub, models)
    assert truth != before or [e.config for e in truth] != [e.config for e in before]
    _same(_scan(hub, models, index), truth)
    _same(_scan(hub, models, index), truth)  # and the rewritten index holds it


def test_only_entries_of_the_last_scan_are_kept(tmp_path: Path, trusted: None) -> None:
    hub, models, index = _build(tmp_path)
    first = _scan(hub, models, index)
    assert len(catalog_index.CatalogIndex.load(index)) == len(first) - 1  # all but org/nosnap
    _delete_repo(hub, models)
    _scan(hub, models, index)
    loaded = catalog_index.CatalogIndex.load(index)
    assert len(loaded) == len(first) - 2
    assert not any(loaded.knows(e) for e in first if e.id == "org/no-refs")


def test_racy_stamps_are_not_trusted(
    tmp_path: Path, reads: Counts, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, models, index = _build(tmp_path)
    monkeypatch.setattr(hfcache, "RACY_NS", 3600 * 10**9)  # all written "too recently"
    truth = _scan(hub, models, index)
    reads.clear()
    _same(_scan(hub, models, index), truth)
    assert reads["_read_snapshot"] == 4 and reads["load_json"] >= 6  # every one read again


@pytest.mark.parametrize(
    "content",
    [
        b"garbage",
        b"",
        catalog_index.MAGIC + b"\0\0\0\0" + b"truncated",
        catalog_index.MAGIC + b"\0\0\0\0" + pickle.dumps({"version": 0, "records": {}}),
    ],
    ids=["garbage", "empty", "bad-crc", "old-version"],
)
def test_unusable_index_is_ignored_and_rewritten(
    tmp_path: Path, trusted: None, content: bytes
) -> None:
    hub, models, index = _build(tmp_path)
    index.parent.mkdir(parents=True)
    index.write_bytes(content)
    _same(_scan(hub, models, index), _scan(hub, models))
    assert index.read_bytes().startswith(catalog_index.MAGIC)
    assert len(catalog_index.CatalogIndex.load(index)) == 8  # all but org/nosnap


def _records_with(payload: object) -> bytes:
    import zlib

    data = pickle.dumps(payload, protocol=5)
    return catalog_index.MAGIC + zlib.crc32(data).to_bytes(4, "little") + data


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch pwned",))


def test_index_never_loads_code_or_bad_records(tmp_path: Path, trusted: None) -> None:
    hub, models, index = _build(tmp_path)
    index.parent.mkdir(parents=True)
    index.write_bytes(_records_with({"version": catalog_index.VERSION, "records": Evil()}))
    _same(_scan(hub, models, index), _scan(hub, models))
    assert not (Path.cwd() / "pwned").exists()
    good = pickle.loads(index.read_bytes()[len(catalog_index.MAGIC) + 4 :])["records"]
    records = {key: ("repo", "bad", None, (), ()) for key in good}
    index.write_bytes(_records_with({"version": catalog_index.VERSION, "records": records}))
    _same(_scan(hub, models, index), _scan(hub, models))


def test_unwritable_index_location_still_scans(tmp_path: Path, trusted: None) -> None:
    hub, models, _ = _build(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    index = tmp_path / "file" / "vllm-console" / catalog_index.INDEX_NAME
    _same(_scan(hub, models, index), _scan(hub, models))
    assert not index.exists()


def test_iter_detailed_with_index(tmp_path: Path, trusted: None) -> None:
    hub, models, index = _build(tmp_path)
    listed = catalog.list_models(hub, [models]).entries
    truth = {e.key + e.id: e for e in catalog.iter_detailed(listed)}
    for workers in (1, 3):
        got = list(catalog.iter_detailed(listed, workers, index_path=index))
        assert {e.key + e.id: e for e in got} == truth
    _add_revision(hub, models)  # a stale listing: its snapshot is still there, its refs moved
    got = list(catalog.iter_detailed(listed, index_path=index))
    assert [e.id for e in got][-1] == "org/nosnap"  # entries the index knows come first
    assert sorted(e.key for e in got) == sorted(e.key for e in listed)


def _scan_cache_dir_sizes(hub: Path) -> dict[str, int]:
    return {r.repo_id: r.size_on_disk for r in scan_cache_dir(hub).repos}


def test_truth_with_a_warm_index(tmp_path: Path, trusted: None, reads: Counts) -> None:
    hub = build_bench_cache(tmp_path / "hub", 12)
    index = tmp_path / "index"
    _scan(hub, tmp_path / "none", index)
    _tick()
    write_cache_repo(hub, "org0/model-0", [FakeRevision(commit_hash("z"), _files("z"), ("main",))])
    reads.clear()
    entries = _scan(hub, tmp_path / "none", index)
    assert reads["_read_snapshot"] == 1  # only the changed repo
    theirs = {r.repo_id: r for r in scan_cache_dir(hub).repos}
    assert {e.id: e.size_bytes for e in entries} == _scan_cache_dir_sizes(hub)
    for entry in entries:
        revs = {r.commit_hash: r for r in theirs[entry.id].revisions}
        assert {r.commit: set(r.refs) for r in entry.revisions} == {
            c: set(r.refs) for c, r in revs.items()
        }
        chosen = entry.revisions[0]
        truth = revs[chosen.commit]
        assert (chosen.size_bytes, chosen.nb_files) == (truth.size_on_disk, truth.nb_files)


def test_default_index_path(tmp_path: Path) -> None:
    home = tmp_path / "home"
    name = catalog_index.INDEX_NAME
    assert catalog_index.default_index_path(home, {}) == home / ".cache" / "vllm-console" / name
    xdg = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert catalog_index.default_index_path(home, xdg) == tmp_path / "xdg" / "vllm-console" / name
    relative = {"XDG_CACHE_HOME": "relative/cache"}
    assert catalog_index.default_index_path(home, relative).parent.parent == home / ".cache"


def test_record_checks_refuse_what_the_catalog_never_writes() -> None:
    from vllm_console.core.catalog import records

    assert records.are_relative(()) and records.are_relative(("a", "b/c.json", "x..y", ".cache/z"))
    for bad in [("",), ("/etc",), ("a/../b",), ("..",), ("../a",), ("a/..",), ("a\0",), (1,)]:
        assert not records.are_relative(bad), bad
    assert records.is_folder_stamps((("", 1, 2, 3), ("x/y", 1, 2, 3)))
    assert not records.is_folder_stamps((("/x", 1, 2, 3),))
    assert records.is_json_object({"a": [1, {"b": None, "c": 1.5}]})
    for bad_config in ({"a": (1,)}, {1: 2}, {"a": b"x"}, {"a": {2}}, [1]):
        assert not records.is_json_object(bad_config)
    deep: dict[str, object] = {}
    inner = deep
    for _ in range(records.MAX_NESTING + 1):
        inner["a"] = {}
        inner = inner["a"]  # type: ignore[assignment]
    assert not records.is_json_object(deep)


def test_a_config_that_shares_its_lists_is_refused_at_once() -> None:
    """A few hundred bytes of pickle, 60 levels of [x, x]: walked naively, 2**60 lists."""
    from vllm_console.core.catalog import records

    shared: list[object] = [1]
    for _ in range(60):
        shared = [shared, shared]
    config = {"architectures": ["LlamaForCausalLM"], "rope": shared}
    assert len(pickle.dumps(config)) < 1000
    started = time.monotonic()
    assert not records.is_json_object(pickle.loads(pickle.dumps(config)))
    assert time.monotonic() - started < 30  # instant; the naive walk never ends
    wide = {"a": [{"b": [1, 2]} for _ in range(records.MAX_CONTAINERS // 2 - 1)]}
    assert records.is_json_object(wide)  # many, not shared, within the bound
