"""The catalog on generated Hugging Face caches, checked against huggingface_hub itself."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest
from huggingface_hub import CachedRepoInfo, scan_cache_dir
from tests.fakes.cachegen import (
    QWEN25_7B,
    FakeRevision,
    build_bench_cache,
    commit_hash,
    count_params,
    drop_revision,
    llama_tensors,
    safetensors_bytes,
    write_cache_repo,
)

from vllm_console.core.catalog import hfcache, hfwalk
from vllm_console.core.catalog import scan as catalog
from vllm_console.core.catalog.entry import Format, ModelEntry, Revision, Source, format_bytes


def _files(tag: str, config: dict[str, object] | None = None) -> dict[str, bytes]:
    files = {
        "config.json": json.dumps(config or QWEN25_7B).encode(),
        "model.safetensors": safetensors_bytes(llama_tensors(), {"format": "pt"}),
        "tokenizer.json": b'{"version": "1.0"}',
        "README.md": f"# model {tag}".encode(),
    }
    return files


def _truth_cache(cache: Path) -> None:
    """Repos with several revisions, branches, PR refs, nested files and incomplete blobs."""
    build_bench_cache(cache, 12)
    a = _files("a")
    b = {**a, "README.md": b"# changed", "original/params.json": b"{}"}
    c = {**b, "extra/deeper/notes.txt": b"notes"}
    write_cache_repo(
        cache,
        "Qwen/Qwen2.5-7B-Instruct",
        [
            FakeRevision(commit_hash("q1"), a, ("refs/pr/1", "refs/pr/7")),
            FakeRevision(commit_hash("q2"), b, ("dev",)),
            FakeRevision(commit_hash("q3"), c, ("main",)),
        ],
        incomplete=2,
    )
    write_cache_repo(cache, "solo", [FakeRevision(commit_hash("s"), a, ("main",))])
    write_cache_repo(cache, "org/no-refs", [FakeRevision(commit_hash("n"), a)])
    write_cache_repo(cache, "org/empty-rev", [FakeRevision(commit_hash("e"), {}, ("main",))])
    repo = write_cache_repo(cache, "org/dangling", [FakeRevision(commit_hash("g"), a, ("main",))])
    (repo / "refs" / "gone").write_text(commit_hash("nowhere"))
    write_cache_repo(
        cache, "some/dataset", [FakeRevision(commit_hash("d"), a)], repo_type="datasets"
    )


def _theirs(cache: Path) -> dict[str, CachedRepoInfo]:
    return {r.repo_id: r for r in scan_cache_dir(cache).repos if r.repo_type == "model"}


def test_truth_matches_scan_cache_dir(tmp_path: Path) -> None:
    """The complete scan: ids, commits, refs and repo sizes; the chosen revision's size."""
    _truth_cache(tmp_path)
    info = scan_cache_dir(tmp_path)
    theirs = {r.repo_id: r for r in info.repos if r.repo_type == "model"}
    result = catalog.scan(tmp_path, [])
    ours = {e.id: e for e in result.entries}
    # scan_cache_dir drops a repo whose ref names a missing snapshot; we keep it, with a problem
    assert len(info.warnings) == 1 and "org--dangling" in str(info.warnings[0])
    assert ours.pop("org/dangling").problems[0].startswith("ref gone points to missing")
    assert set(ours) == set(theirs)
    for repo_id, repo in theirs.items():
        entry = ours[repo_id]
        assert not entry.exact and entry.unreferenced_bytes is None and entry.notes == ()
        assert entry.size_bytes == repo.size_on_disk, repo_id
        revs = {r.commit_hash: r for r in repo.revisions}
        assert {r.commit for r in entry.revisions} == set(revs), repo_id
        for rev in entry.revisions:
            truth = revs[rev.commit]
            assert set(rev.refs) == set(truth.refs), (repo_id, rev.commit)
            assert rev.path == truth.snapshot_path
            if rev.path == entry.path:  # the chosen one is sized, the others are not
                assert (rev.size_bytes, rev.nb_files) == (truth.size_on_disk, truth.nb_files)
            else:
                assert rev.size_bytes is None and rev.nb_files is None
    assert catalog.scan(tmp_path, []).entries == result.entries


def _assert_exact(entry: ModelEntry, truth: CachedRepoInfo) -> None:
    assert entry.exact and entry.detailed
    assert entry.size_bytes == truth.size_on_disk, entry.id
    revs = {r.commit_hash: r for r in truth.revisions}
    assert {r.commit for r in entry.revisions} == set(revs), entry.id
    for rev in entry.revisions:
        t = revs[rev.commit]
        assert set(rev.refs) == set(t.refs), (entry.id, rev.commit)
        assert rev.size_bytes == t.size_on_disk, (entry.id, rev.commit)
        assert rev.nb_files == t.nb_files, (entry.id, rev.commit)
        assert rev.path == t.snapshot_path


def test_exact_walk_matches_scan_cache_dir(tmp_path: Path) -> None:
    """walk_exact: repo size, every revision's size and file count, with an orphaned blob."""
    _truth_cache(tmp_path)
    files = _files("o")
    big = {**files, "model.safetensors": safetensors_bytes(llama_tensors(hidden=128))}
    repo = write_cache_repo(
        tmp_path,
        "org/orphaned",
        [FakeRevision(commit_hash("o1"), big, ("old",)), FakeRevision(commit_hash("o2"), files)],
    )
    drop_revision(repo, commit_hash("o1"))  # its weights blob stays, linked from nowhere
    orphan = len(big["model.safetensors"])
    theirs = _theirs(tmp_path)
    listed = {e.id: e for e in catalog.list_models(tmp_path, []).entries}
    fast = {e.id: e for e in catalog.scan(tmp_path, []).entries}
    for repo_id, truth in theirs.items():
        from_list = catalog.walk_exact(listed[repo_id])
        _assert_exact(from_list, truth)
        from_scan = catalog.walk_exact(fast[repo_id])  # remembered now
        assert from_scan == from_list
        if repo_id == "org/orphaned":
            assert from_list.unreferenced_bytes == orphan
            assert fast[repo_id].size_bytes == truth.size_on_disk + orphan
            assert from_list.notes == (f"{format_bytes(orphan)} in blobs that no revision uses",)
            assert from_list.problems == () and from_list.complete
        else:
            assert from_list.unreferenced_bytes == 0 and from_list.notes == ()
            assert from_list.problems == fast[repo_id].problems
            assert dataclasses.replace(from_list, revisions=(), size_bytes=0, exact=False) == (
                dataclasses.replace(fast[repo_id], revisions=(), size_bytes=0, unreferenced_bytes=0)
            )
    dangling = catalog.walk_exact(listed["org/dangling"])
    assert dangling.problems[0].startswith("ref gone points to missing")


def test_exact_walk_holds_on_a_rewalk_after_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hfcache, "RACY_NS", 0)  # remember even folders changed just now
    _truth_cache(tmp_path)
    old = _stamp_all(tmp_path, -10)
    for entry in catalog.list_models(tmp_path, []).entries:
        catalog.walk_exact(entry)
    repo = "Qwen/Qwen2.5-7B-Instruct"
    rev = FakeRevision(commit_hash("q4"), {**_files("z"), "big.bin": b"x" * 1000}, ("main",))
    write_cache_repo(tmp_path, repo, [rev])
    solo = FakeRevision(commit_hash("s"), {"added.txt": b"y" * 333})  # same snapshot, one more file
    write_cache_repo(tmp_path, "solo", [solo])
    assert old  # the cache really was stamped in the past
    theirs = _theirs(tmp_path)
    listed = {e.id: e for e in catalog.list_models(tmp_path, []).entries}
    for repo_id, truth in theirs.items():
        _assert_exact(catalog.walk_exact(listed[repo_id]), truth)
    fast = {e.id: e.size_bytes for e in catalog.scan(tmp_path, []).entries}
    assert {k: fast[k] for k in theirs} == {k: v.size_on_disk for k, v in theirs.items()}


def _stamp_all(root: Path, delta: int) -> int:
    """Backdate every folder so that the memo trusts them."""
    count = 0
    stamp = time.time() + delta
    for folder, _, _ in os.walk(root):
        os.utime(folder, (stamp, stamp))
        count += 1
    return count


def test_entry_fields_for_the_main_snapshot(tmp_path: Path) -> None:
    _truth_cache(tmp_path)
    entry = next(
        e for e in catalog.scan(tmp_path, []).entries if e.id == "Qwen/Qwen2.5-7B-Instruct"
    )
    assert entry.source is Source.HF_CACHE and entry.detailed
    assert entry.path.name == commit_hash("q3")
    assert entry.revisions[0].commit == commit_hash("q3")
    assert entry.format is Format.SAFETENSORS
    meta = entry.meta
    assert meta.architecture == "Qwen2ForCausalLM" and meta.model_type == "qwen2"
    assert meta.params == count_params(llama_tensors())
    assert meta.dtype == "bfloat16" and meta.context_length == 32768
    assert meta.num_layers == 28 and meta.num_kv_heads == 4 and meta.head_dim == 128
    assert "extra/deeper/notes.txt" in entry.files and "original/params.json" in entry.files
    assert entry.problems == ("incomplete download (2 .incomplete blobs)",)
    assert not entry.complete
    assert entry.config["hidden_size"] == 3584


def test_listing_is_names_only(tmp_path: Path) -> None:
    _truth_cache(tmp_path)
    result = catalog.list_models(tmp_path, [tmp_path / "nowhere"])
    assert result.warnings == ()
    assert result.looked_in == (tmp_path, tmp_path / "nowhere")
    assert all(not e.detailed and e.size_bytes is None for e in result.entries)
    ids = [e.id for e in result.entries]
    assert "some/dataset" not in ids and ids == sorted(ids, key=str.lower)
    qwen = next(e for e in result.entries if e.id == "Qwen/Qwen2.5-7B-Instruct")
    assert qwen.revisions[0].refs == ("main",)


def test_listed_entries_and_revisions_are_what_their_init_makes(tmp_path: Path) -> None:
    rev_args = (commit_hash("c"), tmp_path / "c", ("main",))
    revision, made_revision = Revision.listed(*rev_args), Revision(*rev_args)
    assert vars(revision) == vars(made_revision)  # every field, defaults included
    args = ("org/x", tmp_path / "c", Source.HF_CACHE, tmp_path, (revision,))
    entry, made = ModelEntry.listed(*args), ModelEntry(*args)
    assert vars(entry) == vars(made)
    assert (entry, hash(entry), repr(entry)) == (made, hash(made), repr(made))
    assert entry.config == {} and entry.config is not ModelEntry.listed(*args).config
    other = (Revision.listed(commit_hash("d"), tmp_path / "d"),)
    assert vars(made.with_revisions(other)) == vars(dataclasses.replace(made, revisions=other))


def test_a_detailed_entry_is_what_its_init_makes(tmp_path: Path) -> None:
    from vllm_console.core.catalog.describe import Described, merged
    from vllm_console.core.catalog.meta import ModelMeta

    listed = ModelEntry.listed("org/x", tmp_path / "c", Source.MODELSCOPE, tmp_path)
    d = Described(
        Format.SAFETENSORS,
        ModelMeta(architecture="X", params=7),
        {"a": 1},
        ("bad header",),
        ("model.safetensors",),
        (("consolidated.safetensors", "a duplicate"),),
    )
    revision = (Revision.listed("master", tmp_path / "c"),)
    entry = merged(listed, d, 5, ["config.json"], ["late"], revision, exact=False, notes=("n",))
    made = ModelEntry(
        "org/x",
        tmp_path / "c",
        Source.MODELSCOPE,
        tmp_path,
        revision,
        Format.SAFETENSORS,
        d.meta,
        5,
        ("config.json",),
        ("model.safetensors",),
        (("consolidated.safetensors", "a duplicate"),),
        ("late", "bad header"),
        True,
        {"a": 1},
        False,
        None,
        ("n",),
    )
    assert vars(entry) == vars(made)  # every field, none forgotten
    assert (entry, hash(entry), repr(entry)) == (made, hash(made), repr(made))
    assert merged(listed, d, 5, [], []).revisions == listed.revisions


def test_listing_a_relative_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commit = commit_hash("r")
    write_cache_repo(tmp_path, "a/b", [FakeRevision(commit, _files("r"), ("main",))])
    monkeypatch.chdir(tmp_path)
    (entry,) = catalog.list_models(Path("."), []).entries
    assert entry.path == Path("models--a--b/snapshots") / commit
    assert str(entry.path) == f"models--a--b/snapshots/{commit}"
    assert entry.revisions[0].path is entry.path and entry.root == Path(".")


def test_no_main_ref_chooses_the_newest_snapshot(tmp_path: Path) -> None:
    files = _files("x")
    old, new = commit_hash("old"), commit_hash("new")
    repo = write_cache_repo(tmp_path, "a/b", [FakeRevision(new, files), FakeRevision(old, files)])
    os.utime(repo / "snapshots" / old, (1_000_000, 1_000_000))
    os.utime(repo / "snapshots" / new, (2_000_000, 2_000_000))
    (entry,) = catalog.list_models(tmp_path, []).entries
    assert entry.path == repo / "snapshots" / new


def test_first_list_names_the_main_snapshot_and_the_scan_every_revision(tmp_path: Path) -> None:
    """The first list reads refs/main and stats the snapshot it names; the other revisions
    come with the complete scan (and the exact walk), listed as the folder holds them then."""
    files = _files("m")
    c1, c2, c3, c4 = (commit_hash(f"c{i}") for i in range(1, 5))
    revs = [FakeRevision(c2, files), FakeRevision(c3, files, ("main",)), FakeRevision(c1, files)]
    repo = write_cache_repo(tmp_path, "a/b", revs)
    (listed,) = catalog.list_models(tmp_path, []).entries
    assert listed.path == repo / "snapshots" / c3
    assert [(r.commit, r.path, r.refs) for r in listed.revisions] == [(c3, listed.path, ("main",))]
    (scanned,) = catalog.iter_detailed([listed])
    assert [r.commit for r in scanned.revisions] == [c3, *sorted([c1, c2])]
    assert all(r.path == repo / "snapshots" / r.commit for r in scanned.revisions)
    assert scanned.path == listed.path and scanned.problems == ()
    (repo / "snapshots" / c4).mkdir()  # a snapshot that appeared after the first list
    assert [r.commit for r in hfcache.with_all_revisions(listed).revisions] == [
        c3,
        *sorted([c1, c2, c4]),
    ]
    exact = catalog.walk_exact(listed)
    assert [r.commit for r in exact.revisions] == [c3, *sorted([c1, c2, c4])]
    assert hfcache.with_all_revisions(scanned) is not scanned
    assert hfcache.with_all_revisions(exact) is exact  # nothing new: the same entry


@pytest.mark.parametrize("main", ["missing", ".", "..", "../snapshots", ""])
def test_a_main_ref_without_its_snapshot_lists_them_all(tmp_path: Path, main: str) -> None:
    """refs/main naming no snapshot (or not a commit at all): the newest is chosen from the
    listing of snapshots/, and the first list has every revision."""
    files = _files("x")
    old, new = commit_hash("old"), commit_hash("new")
    repo = write_cache_repo(tmp_path, "a/b", [FakeRevision(new, files), FakeRevision(old, files)])
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit_hash("gone") if main == "missing" else main)
    os.utime(repo / "snapshots" / old, (1_000_000, 1_000_000))
    os.utime(repo / "snapshots" / new, (2_000_000, 2_000_000))
    (entry,) = catalog.list_models(tmp_path, []).entries
    assert entry.path == repo / "snapshots" / new
    assert [(r.commit, r.refs) for r in entry.revisions] == [(new, ()), (old, ())]
    assert hfcache.with_all_revisions(entry) is entry


def test_first_list_chooses_what_resolve_chooses(tmp_path: Path) -> None:
    """Odd repos: the listing's shortcut and `choose_snapshot` (resolve's rule) agree, and the
    complete scan has every snapshot folder as a revision."""
    files = _files("o")
    a, b, c = commit_hash("a"), commit_hash("b"), commit_hash("c")
    write_cache_repo(tmp_path, "o/main-ok", [FakeRevision(a, files, ("main",))])
    write_cache_repo(
        tmp_path, "o/main-old", [FakeRevision(a, files, ("main",)), FakeRevision(b, files)]
    )
    write_cache_repo(
        tmp_path, "o/no-main", [FakeRevision(a, files, ("dev",)), FakeRevision(b, files)]
    )
    gone = write_cache_repo(
        tmp_path, "o/main-gone", [FakeRevision(a, files), FakeRevision(b, files)]
    )
    (gone / "refs").mkdir(exist_ok=True)
    (gone / "refs" / "main").write_text(c)
    linked = write_cache_repo(tmp_path, "o/linked", [FakeRevision(a, files, ("main",))])
    os.rename(linked / "snapshots" / a, linked / "elsewhere")
    os.symlink("../elsewhere", linked / "snapshots" / a)  # a snapshot that is a link: kept
    stray = write_cache_repo(
        tmp_path, "o/stray-file", [FakeRevision(a, files), FakeRevision(b, files)]
    )
    (stray / "snapshots" / "notes.txt").write_text("not a snapshot")
    (stray / "refs").mkdir(exist_ok=True)
    (stray / "refs" / "main").write_text("notes.txt")  # names a file: not a snapshot
    empty = tmp_path / "models--o--empty"
    (empty / "snapshots").mkdir(parents=True)
    for n, repo in enumerate([gone, stray]):  # the newest decides where refs/main does not
        for k, commit in enumerate([a, b]):
            t = 1_000_000 + (k if n == 0 else -k) * 1000
            os.utime(repo / "snapshots" / commit, (t, t))
    listed = catalog.list_models(tmp_path, []).entries
    assert len(listed) == 7
    for entry, scanned in zip(listed, catalog.iter_detailed(listed), strict=True):
        repo_dir = hfcache.repo_dir(entry)
        choice = hfcache.choose_snapshot(repo_dir)
        expected = Path(repo_dir) / "snapshots" / choice.chosen if choice.chosen else Path(repo_dir)
        assert entry.path == expected, entry.id
        assert scanned.path == entry.path
        assert [r.commit for r in scanned.revisions] == (
            [choice.chosen, *sorted(set(choice.snapshots) - {choice.chosen})]
            if choice.chosen
            else []
        ), entry.id
    chosen = {e.id: e.path.name for e in listed}
    assert chosen["o/main-old"] == a and chosen["o/main-gone"] == b
    assert chosen["o/stray-file"] == a and chosen["o/linked"] == a


def test_broken_links_and_missing_things(tmp_path: Path) -> None:
    write_cache_repo(
        tmp_path,
        "a/broken",
        [FakeRevision(commit_hash("b"), _files("b"), ("main",), broken=("model-2.safetensors",))],
    )
    write_cache_repo(
        tmp_path, "a/noconfig", [FakeRevision(commit_hash("c"), {"x.txt": b"1"}, ("main",))]
    )
    bad = {**_files("d"), "config.json": b"{not json"}
    write_cache_repo(tmp_path, "a/badjson", [FakeRevision(commit_hash("d"), bad, ("main",))])
    repo = write_cache_repo(
        tmp_path, "a/dangling-ref", [FakeRevision(commit_hash("e"), _files("e"), ("main",))]
    )
    (repo / "refs" / "gone").write_text(commit_hash("nowhere"))
    (tmp_path / "models--a--nosnap" / "refs").mkdir(parents=True)
    by_id = {e.id: e for e in catalog.scan(tmp_path, []).entries}
    assert by_id["a/broken"].problems == ("broken link: model-2.safetensors",)
    assert by_id["a/noconfig"].problems == ("no config.json", "no weights")
    assert by_id["a/badjson"].problems[0].startswith("unreadable config.json: invalid JSON")
    assert by_id["a/badjson"].meta.params is not None  # the weights are still read
    assert by_id["a/dangling-ref"].problems[0].startswith("ref gone points to missing snapshot")
    assert by_id["a/nosnap"].problems == ("no snapshots",)
    assert by_id["a/nosnap"].path == tmp_path / "models--a--nosnap"


def test_missing_cache_is_silent_and_a_file_is_not_a_cache(tmp_path: Path) -> None:
    assert catalog.scan(tmp_path / "absent", []).warnings == ()
    (tmp_path / "file").write_text("x")
    assert catalog.scan(tmp_path / "file", []).entries == ()


def test_unreadable_cache_is_a_warning(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads folders whatever their mode")
    cache = tmp_path / "hub"
    cache.mkdir()
    cache.chmod(0)
    try:
        result = catalog.list_models(cache, [])
    finally:
        cache.chmod(0o755)
    assert result.warnings and result.warnings[0].startswith("unreadable folder")


def test_iter_detailed_yields_every_entry(tmp_path: Path) -> None:
    build_bench_cache(tmp_path, 6)
    listed = catalog.list_models(tmp_path, []).entries
    for workers in (1, 3):
        got = list(catalog.iter_detailed(listed, workers=workers))
        assert sorted(e.key for e in got) == sorted(e.key for e in listed)
        assert all(e.detailed for e in got)
    assert catalog.scan(tmp_path, [], workers=2).entries == catalog.scan(tmp_path, []).entries


def test_broken_links_of_other_revisions_need_the_exact_walk(tmp_path: Path) -> None:
    files = _files("r")
    old = FakeRevision(commit_hash("old"), files, ("v1",), broken=("gone.bin",))
    new = FakeRevision(commit_hash("new"), files, ("main",), broken=("lost.txt",))
    write_cache_repo(tmp_path, "a/b", [old, new])
    (entry,) = catalog.scan(tmp_path, []).entries
    assert entry.problems == ("broken link: lost.txt",)  # the snapshot a launch would use
    assert entry.files == tuple(sorted(files))
    exact = catalog.walk_exact(entry)
    assert exact.problems == (
        "broken link: lost.txt",
        f"broken link: gone.bin (revision {commit_hash('old')[:8]})",
    )
    assert [r.nb_files for r in exact.revisions] == [len(files), len(files)]
    assert exact.size_bytes == entry.size_bytes == sum(len(b) for b in files.values())
    assert exact.unreferenced_bytes == 0 and exact.files == entry.files


def test_walk_exact_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cache_repo(tmp_path, "a/b", [FakeRevision(commit_hash("x"), _files("x"), ("main",))])
    (listed,) = catalog.list_models(tmp_path, []).entries

    def boom(entry: ModelEntry) -> None:
        raise RuntimeError("surprise")

    monkeypatch.setattr(hfwalk, "walk_repo", boom)
    failed = catalog.walk_exact(listed)
    assert failed.detailed and failed.problems == ("could not read: RuntimeError: surprise",)
