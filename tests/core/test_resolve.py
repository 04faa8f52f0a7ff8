"""Name resolution in the original launch script's order, on real folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vllm_console.core.catalog import scan as catalog
from vllm_console.core.catalog.resolve import Rule, resolve


def make_cache_repo(cache: Path, repo_id: str, commits: list[str], main: str | None) -> Path:
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    for i, commit in enumerate(commits):
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        (snap / "config.json").write_text("{}")
        os.utime(snap, (1_000_000 + i, 1_000_000 + i))
    if main is not None:
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(main)
    return repo


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path, Path]:
    cache, dir_a, dir_b = tmp_path / "hub", tmp_path / "a", tmp_path / "b"
    for path in (cache, dir_a, dir_b):
        path.mkdir()
    return cache, dir_a, dir_b


def test_existing_path_wins(places: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cache, dir_a, _ = places
    model = tmp_path / "mymodel"
    model.mkdir()
    make_cache_repo(cache, "mymodel", ["c1"], "c1")
    r = resolve("mymodel", hf_cache=cache, model_dirs=[dir_a], cwd=tmp_path)
    assert r.rule is Rule.PATH and r.path == model
    assert [a.rule for a in r.tried] == [Rule.PATH]


def test_cache_uses_refs_main(places: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cache, dir_a, _ = places
    repo = make_cache_repo(cache, "Org/Model", ["old", "new"], "old")
    (dir_a / "Org--Model").mkdir()
    r = resolve("Org/Model", hf_cache=cache, model_dirs=[dir_a], cwd=tmp_path)
    assert r.rule is Rule.HF_CACHE
    assert r.path == repo / "snapshots" / "old"
    assert "refs/main" in r.reason
    assert r.tried[0].rule is Rule.PATH and r.tried[0].outcome == "no such path"


def test_cache_falls_back_to_newest_snapshot(
    places: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    cache, _, _ = places
    repo = make_cache_repo(cache, "Org/Model", ["old", "new"], None)
    r = resolve("Org/Model", hf_cache=cache, model_dirs=[], cwd=tmp_path)
    assert r.path == repo / "snapshots" / "new"
    assert "newest" in r.reason


def test_cache_with_dangling_main(places: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cache, _, _ = places
    repo = make_cache_repo(cache, "Org/Model", ["a1"], "gone")
    r = resolve("Org/Model", hf_cache=cache, model_dirs=[], cwd=tmp_path)
    assert r.path == repo / "snapshots" / "a1"


@pytest.mark.parametrize(
    ("commits", "main", "chosen", "why"),
    [
        (["old", "new"], "old", "old", "refs/main -> old"),
        (["old", "new"], None, "new", "no refs/main; newest snapshot new"),
        (["old", "new"], "", "new", "no refs/main; newest snapshot new"),
        (["old", "new"], "gone", "new", "refs/main names no snapshot here; newest snapshot new"),
        (["a1"], "gone", "a1", "refs/main names no snapshot here; newest snapshot a1"),
    ],
)
def test_resolve_and_the_catalog_choose_the_same_snapshot(
    places: tuple[Path, Path, Path],
    tmp_path: Path,
    commits: list[str],
    main: str | None,
    chosen: str,
    why: str,
) -> None:
    cache, _, _ = places
    repo = make_cache_repo(cache, "Org/Model", commits, main)
    r = resolve("Org/Model", hf_cache=cache, model_dirs=[], cwd=tmp_path)
    (entry,) = catalog.list_models(cache, []).entries
    assert r.path == entry.path == repo / "snapshots" / chosen
    assert r.reason == f"found in the Hugging Face cache ({why})"
    first = entry.revisions[0]
    assert (first.commit, first.refs) == (chosen, ("main",) if main == chosen else ())


def test_cache_repo_without_snapshots_is_passed_over(
    places: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    cache, dir_a, _ = places
    make_cache_repo(cache, "Org/Model", [], "abc")
    (dir_a / "Org--Model").mkdir()
    r = resolve("Org/Model", hf_cache=cache, model_dirs=[dir_a], cwd=tmp_path)
    assert r.rule is Rule.MODEL_DIR and r.path == dir_a / "Org--Model"
    assert (r.tried[1].rule, r.tried[1].outcome) == (Rule.HF_CACHE, "no snapshots")


@pytest.mark.parametrize(
    ("layout", "name"),
    [
        ("Org--Model", "Org/Model"),
        ("Org/Model", "Org/Model"),
        ("Model", "Org/Model"),
        ("Model", "Model"),
    ],
)
def test_model_dirs(
    places: tuple[Path, Path, Path], tmp_path: Path, layout: str, name: str
) -> None:
    cache, dir_a, dir_b = places
    (dir_b / layout).mkdir(parents=True)
    r = resolve(name, hf_cache=cache, model_dirs=[dir_a, dir_b], cwd=tmp_path)
    assert r.rule is Rule.MODEL_DIR
    assert r.path == dir_b / layout
    assert str(dir_b) in r.reason
    # every candidate in the first folder was tried before the second folder's hit
    assert any(a.place.startswith(str(dir_a)) for a in r.tried)


def test_first_folder_wins(places: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cache, dir_a, dir_b = places
    (dir_a / "Org--Model").mkdir()
    (dir_b / "Org--Model").mkdir()
    r = resolve("Org/Model", hf_cache=cache, model_dirs=[dir_a, dir_b], cwd=tmp_path)
    assert r.path == dir_a / "Org--Model"


def test_hub_id_last(places: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cache, dir_a, _ = places
    r = resolve("Qwen/Qwen2.5-7B-Instruct", hf_cache=cache, model_dirs=[dir_a], cwd=tmp_path)
    assert r.rule is Rule.HUB and r.needs_download
    assert r.hub_id == "Qwen/Qwen2.5-7B-Instruct" and r.path is None
    rules = [a.rule for a in r.tried]
    assert rules == [Rule.PATH, Rule.HF_CACHE, Rule.MODEL_DIR, Rule.MODEL_DIR, Rule.MODEL_DIR]
    data = r.to_json()
    assert data["rule"] == "hub" and data["path"] is None and len(data["tried"]) == 5  # type: ignore[arg-type]


def test_not_found(places: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cache, dir_a, _ = places
    r = resolve("no such thing", hf_cache=cache, model_dirs=[dir_a], cwd=tmp_path)
    assert r.rule is Rule.NOT_FOUND and r.path is None and r.hub_id is None


def test_a_tilde_of_no_such_user_is_taken_as_written(tmp_path: Path) -> None:
    """pathlib raises for `~user` of no such user; resolve never raises for an odd name."""
    found = resolve("~no-such-user-0/model", hf_cache=tmp_path, model_dirs=(), cwd=tmp_path)
    assert found.tried[0].place.endswith("~no-such-user-0/model")
