"""The catalog against a hostile disk: FIFOs, devices, huge numbers, deep nesting, huge trees.

Every case is made of real files in a temporary folder and run through the command line as a
user would (`models`, `models --json`, `resolve`), each in a thread with a time limit, so a
regression that blocks fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from tests.fakes.cachegen import (
    QWEN25_7B,
    FakeRevision,
    commit_hash,
    gguf_bytes,
    llama_gguf_metadata,
    llama_tensors,
    safetensors_bytes,
    write_cache_repo,
    write_model_dir,
)

from vllm_console.cli import main
from vllm_console.core.catalog import folders, hfcache
from vllm_console.core.catalog import index as catalog_index
from vllm_console.core.catalog import scan as catalog
from vllm_console.core.catalog.entry import format_bytes, format_params, format_tokens

LIMIT_S = 10.0
ROOT = Path(__file__).resolve().parents[2]


def run_cli(args: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`main(args)` in a thread; fails (instead of hanging) if it takes more than LIMIT_S."""
    result: list[int] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(main(list(args)))
        except BaseException as exc:  # a traceback is a failure too; report it below
            errors.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(LIMIT_S)
    assert not worker.is_alive(), f"{args} still running after {LIMIT_S} s"
    assert not errors, f"{args} raised {errors[0]!r}"
    out, err = capsys.readouterr()
    return result[0], out, err


@pytest.fixture(autouse=True)
def trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust stamps however new, so the files written just now are indexed."""
    monkeypatch.setattr(hfcache, "RACY_NS", 0)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME and cwd; the model folder is `<cwd>/models` (a default one)."""
    for name in list(os.environ):
        if name.startswith(("VLLM_", "HF_", "XDG_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    monkeypatch.chdir(work)
    return work


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _safetensors_header(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _nested_gguf(depth: int) -> bytes:
    """A GGUF header whose one key holds arrays of arrays, `depth` deep."""
    body = struct.pack("<IQ", 4, 0)  # innermost: an empty array of uint32
    for _ in range(depth - 1):
        body = struct.pack("<IQ", 9, 1) + body
    key = struct.pack("<Q", 1) + b"x" + struct.pack("<I", 9)
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + key + body


def _model(models: Path, name: str, **files: bytes) -> Path:
    folder = models / name
    folder.mkdir()
    for file_name, content in files.items():
        (folder / file_name.replace("__", ".")).write_bytes(content)
    return folder


CONFIG = json.dumps(QWEN25_7B).encode()
WEIGHTS = safetensors_bytes(llama_tensors(), {"format": "pt"})
HUGE_SHAPES = json.dumps({"w": {"dtype": "F32", "shape": [2**62] * 20, "data_offsets": [0, 0]}})
DIGITS_5000 = '{"w": {"dtype": "F32", "shape": [1' + "1" * 5000 + '], "data_offsets": [0, 4]}}'


def _hostile_models(work: Path) -> dict[str, str]:
    """Every case of the issue in `work/models`: model id -> the problem its entry must carry."""
    models = work / "models"
    fifo_config = _model(models, "Org--fifo-config", model__safetensors=WEIGHTS)
    _fifo(fifo_config / "config.json")
    fifo_weights = _model(models, "Org--fifo-weights", config__json=CONFIG)
    _fifo(fifo_weights / "model.safetensors")
    link = _model(models, "Org--link-to-fifo", model__safetensors=WEIGHTS)
    (link / "config.json").symlink_to(_fifo(work / "elsewhere.fifo"))
    zero = _model(models, "Org--dev-zero", model__safetensors=WEIGHTS)
    (zero / "config.json").symlink_to("/dev/zero")
    sock = _model(models, "Org--socket", model__safetensors=WEIGHTS)
    # A socket's path may be at most ~107 bytes, and the test's folder can be longer: bind
    # in a short folder, then move the socket into place (a rename keeps it a socket).
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="s") as short:
        server = socket.socket(socket.AF_UNIX)
        server.bind(f"{short}/s")
        server.close()
        os.rename(f"{short}/s", sock / "config.json")
    _model(
        models,
        "Org--huge-shapes",
        config__json=CONFIG,
        model__safetensors=_safetensors_header(HUGE_SHAPES),
    )
    long_context = json.dumps({**QWEN25_7B, "max_position_embeddings": 10**400}).encode()
    _model(models, "Org--long-context", config__json=long_context, model__safetensors=WEIGHTS)
    _model(
        models,
        "Org--digits-5000",
        config__json=CONFIG,
        model__safetensors=_safetensors_header(DIGITS_5000),
    )
    huge_dims = [("w", [2**62, 2**62], 0)]
    (models / "huge-dims.gguf").write_bytes(gguf_bytes(llama_gguf_metadata(), huge_dims))
    (models / "deep-nesting.gguf").write_bytes(_nested_gguf(10_000))
    return {
        "Org/fifo-config": "config.json is not a regular file",
        "Org/fifo-weights": "model.safetensors is not a regular file",
        "Org/link-to-fifo": "config.json is not a regular file",
        "Org/dev-zero": "config.json is not a regular file",
        "Org/socket": "config.json is not a regular file",
        "Org/huge-shapes": "implausible dimension 4.6e18 in tensor 'w'",
        "Org/long-context": "implausible context length 1e400 in config.json",
        "Org/digits-5000": "header is not valid JSON",
        "huge-dims": "implausible tensor dimension 4.6e18 in the header",
        "deep-nesting": "arrays nested more than 8 deep",
    }


def test_models_json_carries_each_problem(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = _hostile_models(env)
    rc, out, _ = run_cli(["models", "--json"], capsys)
    assert rc == 0
    by_id = {entry["id"]: entry for entry in json.loads(out)}
    for model_id, problem in expected.items():
        entry = by_id[model_id]
        assert any(problem in p for p in entry["problems"]), (model_id, entry["problems"])
        assert not entry["complete"]
        for key in ("params", "context_length"):  # a value left empty, never a huge figure
            assert entry[key] is None or entry[key] < 10**15, (model_id, key)


def test_models_table_survives(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = _hostile_models(env)
    rc, out, err = run_cli(["models"], capsys)
    assert rc == 0 and "Traceback" not in out + err
    for model_id in expected:
        assert model_id in out
    assert max(len(cell) for line in out.splitlines() for cell in line.split()) < 120


@pytest.mark.parametrize(
    "name", ["Org/fifo-config", "Org/dev-zero", "Org/huge-shapes", "huge-dims.gguf"]
)
def test_resolve_survives(env: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    _hostile_models(env)
    rc, out, _ = run_cli(["resolve", name], capsys)
    assert rc == 0 and "rule:   model-dir" in out
    rc, out, _ = run_cli(["resolve", "--json", name], capsys)
    assert rc == 0 and json.loads(out)["path"]


def test_second_run_with_the_index_keeps_the_problems(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = _hostile_models(env)
    first = run_cli(["models", "--json"], capsys)[1]
    time.sleep(0.05)
    second = run_cli(["models", "--json"], capsys)[1]
    assert json.loads(first) == json.loads(second)
    assert len(json.loads(second)) == len(expected)


def test_cache_repo_with_fifos(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hub = env.parent / "home" / ".cache" / "huggingface" / "hub"
    files = {"config.json": CONFIG, "model.safetensors": WEIGHTS}
    write_cache_repo(hub, "Org/fifo-blob", [FakeRevision(commit_hash("a"), files, ("main",))])
    snapshot = hub / "models--Org--fifo-blob" / "snapshots" / commit_hash("a")
    blob = (snapshot / "config.json").resolve()
    blob.unlink()
    _fifo(blob)
    write_cache_repo(hub, "Org/fifo-ref", [FakeRevision(commit_hash("b"), files, ("main",))])
    main_ref = hub / "models--Org--fifo-ref" / "refs" / "main"
    main_ref.unlink()
    _fifo(main_ref)
    rc, out, _ = run_cli(["models", "--json"], capsys)
    by_id = {entry["id"]: entry for entry in json.loads(out)}
    assert "config.json is not a regular file" in by_id["Org/fifo-blob"]["problems"]
    assert by_id["Org/fifo-ref"]["revisions"][0]["commit"] == commit_hash("b")  # the newest
    rc, out, _ = run_cli(["resolve", "Org/fifo-ref"], capsys)
    assert rc == 0 and commit_hash("b") in out


# --- the index -----------------------------------------------------------------------------


def _index_of(home: Path) -> Path:
    return home / ".cache" / "vllm-console" / catalog_index.INDEX_NAME


def test_index_folder_and_file_are_private(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_model_dir(env / "models" / "Org--Tiny")
    home = env.parent / "home"
    old_umask = os.umask(0o022)
    try:
        run_cli(["models"], capsys)
    finally:
        os.umask(old_umask)
    index = _index_of(home)
    assert stat.S_IMODE(index.stat().st_mode) == 0o600
    assert stat.S_IMODE(index.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / ".cache").stat().st_mode) == 0o700


def _hostile_index(path: Path, payload: object) -> None:
    data = pickle.dumps(payload, protocol=5)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(catalog_index.MAGIC + zlib.crc32(data).to_bytes(4, "little") + data)


def _truth(hub: Path, models: Path) -> tuple[object, ...]:
    catalog.clear_memos()
    return catalog.scan(hub, [models]).entries


def _spoil(index: Path, make: str) -> None:
    """Turn a good index file into one of the bad ones."""
    good = pickle.loads(index.read_bytes()[len(catalog_index.MAGIC) + 4 :])
    if make in ("fifo", "dev-zero"):
        index.unlink()
        if make == "fifo":
            _fifo(index)
        else:
            index.symlink_to("/dev/zero")
        return
    if make == "other-owner":
        os.chown(index, 12345, 12345)
        return
    if make == "group-writable":
        index.chmod(0o664)
        return
    records = good["records"]
    for key, record in records.items():
        if make == "wrong-shapes":
            records[key] = (record[0], ((1, 2), ("x" * 3,)), None, [], {})
        elif record[0] == "repo":
            records[key] = (*record[:3], (10**400, *record[3][1:]), record[4])
        else:
            fmt, meta, config, _, loaded, ignored = record[2]
            huge = (None, None, 10**400, *meta[3:])
            records[key] = (*record[:2], (fmt, huge, config, (), loaded, ignored))
    _hostile_index(index, good)


@pytest.mark.parametrize(
    "make",
    ["fifo", "dev-zero", "other-owner", "group-writable", "huge-numbers", "wrong-shapes"],
)
def test_hostile_index_is_no_index(tmp_path: Path, make: str) -> None:
    if make == "other-owner" and os.geteuid() != 0:
        pytest.skip("only root can give a file away")
    hub, models = tmp_path / "hub", tmp_path / "models"
    write_model_dir(models / "Org--Tiny")
    files = {"config.json": CONFIG, "model.safetensors": WEIGHTS}
    write_cache_repo(hub, "Org/Repo", [FakeRevision(commit_hash("r"), files, ("main",))])
    index = tmp_path / "state" / catalog_index.INDEX_NAME
    catalog.scan(hub, [models], index_path=index)
    assert len(catalog_index.CatalogIndex.load(index)) == 2
    _spoil(index, make)
    assert len(catalog_index.CatalogIndex.load(index)) in (0, 2)  # none, or none usable
    result = _in_time(lambda: catalog.scan(hub, [models], index_path=index).entries)
    assert result == _truth(hub, models)


def _in_time(fn: Callable[[], object]) -> object:
    box: list[object] = []
    worker = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    worker.start()
    worker.join(LIMIT_S)
    assert not worker.is_alive() and box, "did not finish in time"
    return box[0]


# --- bounded walks -------------------------------------------------------------------------


def _deep_and_wide(models: Path) -> Path:
    """A model with a chain of folders 50 deep and 20,000 folders in it, and an org folder
    with more folders than a listing visits."""
    model = models / "Org--Big"
    write_model_dir(model)
    chain = model.joinpath(*["d"] * 50)
    chain.mkdir(parents=True)
    (chain / "deep.safetensors").write_bytes(WEIGHTS)
    for i in range(20):
        for j in range(1000):
            (model / f"w{i}" / f"x{j}").mkdir(parents=True)
    wide = models / "wide"
    for i in range(folders.MAX_LISTED + 10):
        (wide / f"n{i}").mkdir(parents=True)
    (model / "loop").symlink_to(model)
    return model


def test_deep_and_wide_tree_is_walked_to_a_bound(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _deep_and_wide(env / "models")
    start = time.monotonic()
    rc, out, err = run_cli(["models", "--json"], capsys)
    assert rc == 0 and time.monotonic() - start < LIMIT_S
    (big,) = [e for e in json.loads(out) if e["id"] == "Org/Big"]
    assert big["complete"] and big["params"]
    assert f"stopped after listing {folders.MAX_LISTED} folders" in err
    walk = folders.walk_folder(str(env / "models" / "Org--Big"))
    assert max(name.count("/") for name in walk.files) <= folders.MAX_DEPTH
    assert not any(name.startswith("loop/") for name in walk.files)


def test_system_folders_are_not_listed(tmp_path: Path) -> None:
    for system in ("/proc", "/sys", "/dev", "/proc/self"):
        entries, warnings = folders.list_folder(Path(system))
        assert entries == [] and "system folder" in warnings[0]
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "proc").symlink_to("/proc")
    assert folders.list_folder(tmp_path / "m") == ([], [])


def test_root_as_model_folder_ends(tmp_path: Path) -> None:
    """`vllm-console models` with `/` as a model folder, in a real process: it ends."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tui"), str(ROOT)]),
        "VLLM_CONSOLE_MODEL_DIRS": "/",
    }
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "vllm_console", "models", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert not any(e["path"].startswith(("/proc", "/sys", "/dev")) for e in json.loads(done.stdout))
    assert time.monotonic() - start < 120


# --- display helpers -------------------------------------------------------------------------


def _figures() -> Iterator[float]:
    yield from (0, 1, -1, 10**400, -(10**400), 2**62, 1e308, -1e308)
    yield from (float("inf"), float("-inf"), float("nan"), 0.5, 1e-300)


def test_format_helpers_never_raise() -> None:
    for n in _figures():
        for text in (format_params(n), format_tokens(n), format_bytes(n)):
            assert isinstance(text, str) and len(text) < 20, (n, text)
