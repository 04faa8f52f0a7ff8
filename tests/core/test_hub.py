"""core.hub against a fake hub on 127.0.0.1: the real huggingface_hub client code runs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fakes.fake_hub import FakeHub, FakeRepo

from vllm_console.core.hub import download as hub_module
from vllm_console.core.hub.download import (
    DownloadCancelled,
    DownloadError,
    DownloadProgress,
    default_output_dir,
    download_model,
    repo_id_problem,
)

shutil_usage = type(shutil.disk_usage("/"))
WEIGHTS = os.urandom(2_000_000)
MAIN = {
    "config.json": b'{"model_type": "llama"}',
    "model.safetensors": WEIGHTS,
    "tokenizer/tokenizer.json": b'{"version": "1.0"}' * 10,
}
V1 = {"config.json": b'{"model_type": "llama", "v": 1}', "model.safetensors": WEIGHTS[::-1]}


@pytest.fixture
def repo() -> FakeRepo:
    return FakeRepo("Org/Name", {"main": MAIN, "v1": V1})


@pytest.fixture
def hub(repo: FakeRepo) -> Iterator[FakeHub]:
    repos = [
        repo,
        FakeRepo.single("Org/Gated", MAIN, gated=True),
        FakeRepo.single("Org/Private", MAIN, private=True),
    ]
    with FakeHub(repos) as fake:
        yield fake


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(folder).parts
    }


def partials(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.incomplete"))


def test_download_into_a_folder(hub: FakeHub, tmp_path: Path) -> None:
    seen: list[DownloadProgress] = []
    out = default_output_dir(tmp_path / "models", "Org/Name")
    assert out == tmp_path / "models" / "Org--Name"

    path = download_model("Org/Name", endpoint=hub.url, output_dir=out, on_progress=seen.append)

    assert path == out
    assert tree(out) == MAIN
    assert seen, "no progress reported"
    pairs = [(p.downloaded_bytes, p.files_done) for p in seen]
    assert pairs == sorted(pairs), "progress went backwards"
    last = seen[-1]
    total = sum(map(len, MAIN.values()))
    assert (last.downloaded_bytes, last.total_bytes) == (total, total)
    assert (last.files_done, last.files_total) == (3, 3)
    assert last.fraction() == 1.0 and last.current_file is None
    assert any(0 < (p.fraction() or 0) < 1 for p in seen) or len(seen) >= 2
    # One listing with sizes, then a HEAD and a GET per file; nothing without our timeouts.
    assert [r.path for r in hub.recorded() if r.path.startswith("/api/")] == [
        "/api/models/Org/Name?blobs=true"
    ]
    assert len(hub.recorded("HEAD")) == 3 and len(hub.body_gets()) == 3


def test_endpoint_without_file_list_leaves_it_all_to_the_library(
    repo: FakeRepo, tmp_path: Path
) -> None:
    seen: list[DownloadProgress] = []
    with FakeHub([repo], siblings=False) as bare:
        path = download_model(
            "Org/Name", endpoint=bare.url, cache_dir=tmp_path / "c", on_progress=seen.append
        )
        assert any("/tree/" in r.path for r in bare.recorded())
    assert tree(path) == MAIN
    last = seen[-1]  # the library's progress bars fed the callback
    assert last.total_bytes is None and last.downloaded_bytes == sum(map(len, MAIN.values()))
    assert last.files_done == 3


def test_second_run_downloads_nothing(hub: FakeHub, tmp_path: Path) -> None:
    download_model("Org/Name", endpoint=hub.url, output_dir=tmp_path / "m")
    hub.requests.clear()
    download_model("Org/Name", endpoint=hub.url, output_dir=tmp_path / "m")
    assert hub.body_gets() == []


def test_download_into_the_cache(hub: FakeHub, repo: FakeRepo, tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    path = download_model("Org/Name", endpoint=hub.url, cache_dir=cache)

    sha = repo.commit("main")
    storage = cache / "models--Org--Name"
    assert path == storage / "snapshots" / sha
    assert (storage / "refs" / "main").read_text() == sha
    assert tree(path) == MAIN
    weights = path / "model.safetensors"
    assert weights.is_symlink() and weights.resolve().parent == (storage / "blobs").resolve()
    assert partials(cache) == []


def test_revision_is_selected(hub: FakeHub, repo: FakeRepo, tmp_path: Path) -> None:
    folder = download_model("Org/Name", endpoint=hub.url, revision="v1", output_dir=tmp_path / "m")
    assert tree(folder) == V1

    cached = download_model("Org/Name", endpoint=hub.url, revision="v1", cache_dir=tmp_path / "c")
    assert cached.name == repo.commit("v1")
    assert (tmp_path / "c/models--Org--Name/refs/v1").read_text() == repo.commit("v1")
    assert tree(cached) == V1


def test_dropped_connection_is_resumed_with_range(hub: FakeHub, tmp_path: Path) -> None:
    hub.drop_after("model.safetensors", 700_000)
    path = download_model("Org/Name", endpoint=hub.url, output_dir=tmp_path / "m")
    assert hub.ranges() == ["bytes=700000-"]
    assert (path / "model.safetensors").read_bytes() == WEIGHTS


def test_cancel_stops_promptly_and_the_next_run_resumes(hub: FakeHub, tmp_path: Path) -> None:
    hub.throttle(2_000_000)  # ~1 s for the weights
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def on_progress(progress: DownloadProgress) -> None:
        if progress.downloaded_bytes > 300_000 and not cancel.is_set():
            cancelled_at.append(time.monotonic())
            cancel.set()

    cache = tmp_path / "hub"
    with pytest.raises(DownloadCancelled):
        download_model(
            "Org/Name", endpoint=hub.url, cache_dir=cache, on_progress=on_progress, cancel=cancel
        )
    assert time.monotonic() - cancelled_at[0] < 2.0
    [partial] = partials(cache)
    kept = partial.stat().st_size
    assert 300_000 <= kept < len(WEIGHTS)

    hub.throttle(None)
    path = download_model("Org/Name", endpoint=hub.url, cache_dir=cache)
    assert hub.ranges() == [f"bytes={kept}-"]
    assert (path / "model.safetensors").read_bytes() == WEIGHTS
    assert partials(cache) == []


def test_stalled_server_fails_then_resumes(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "RETRIES", 0)
    hub.stall_after("model.safetensors", 500_000)
    out = tmp_path / "m"
    started = time.monotonic()
    with pytest.raises(DownloadError, match="stopped answering") as caught:
        download_model("Org/Name", endpoint=hub.url, output_dir=out, read_timeout=1)
    assert time.monotonic() - started < 6
    assert "\n" not in str(caught.value)
    [partial] = partials(out)
    assert partial.stat().st_size == 500_000
    assert partial.parent == out / ".cache" / "huggingface" / "download"

    hub.faults.stall_after.clear()
    download_model("Org/Name", endpoint=hub.url, output_dir=out)
    assert hub.ranges()[-1] == "bytes=500000-"
    assert tree(out) == MAIN


def test_unreachable_endpoint_fails_fast(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        download_model("Org/Name", endpoint=url, output_dir=tmp_path / "m")
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert url in message and "connection refused" in message and "HF_ENDPOINT" in message


def test_server_that_stops_answering_after_the_probe_fails_within_the_timeouts(
    hub: FakeHub, tmp_path: Path
) -> None:
    started = time.monotonic()
    with pytest.raises(DownloadError, match="stopped answering"):
        download_model(
            "Org/Name",
            endpoint=hub.url,
            output_dir=tmp_path / "m",
            read_timeout=1,
            on_progress=lambda _: hub.hang_all(),  # the first report comes right after the probe
        )
    assert time.monotonic() - started < 6


def test_server_that_never_answers_fails_within_the_timeouts(hub: FakeHub, tmp_path: Path) -> None:
    hub.hang_all()
    started = time.monotonic()
    with pytest.raises(DownloadError, match="stopped answering"):
        download_model(
            "Org/Name",
            endpoint=hub.url,
            output_dir=tmp_path / "m",
            connect_timeout=1,
            read_timeout=1,
        )
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("repo_id", "revision", "expected"),
    [
        ("Org/Missing", None, "Org/Missing not found on http://127.0.0.1:"),
        ("Org/Private", None, "private and needs a token (HTTP 401)"),
        ("Org/Gated", None, "Org/Gated is gated"),
        ("Org/Name", "no-such-branch", "revision 'no-such-branch' not found in Org/Name"),
    ],
)
def test_hub_refusals_are_one_clear_line(
    hub: FakeHub, tmp_path: Path, repo_id: str, revision: str | None, expected: str
) -> None:
    with pytest.raises(DownloadError) as caught:
        download_model(repo_id, endpoint=hub.url, revision=revision, output_dir=tmp_path / "m")
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_too_little_disk_space_is_said_before_downloading(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = shutil_usage(total=10**9, used=10**9, free=1000)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: full)
    with pytest.raises(DownloadError, match=r"not enough disk space in .*: 1\.9 MiB more needed"):
        download_model("Org/Name", endpoint=hub.url, output_dir=tmp_path / "m")
    assert not any("/cdn/" in r.path for r in hub.recorded())


def test_cache_and_folder_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        download_model("Org/Name", endpoint=None, output_dir=tmp_path, cache_dir=tmp_path)
    with pytest.raises(ValueError):
        download_model("Org/Name", endpoint=None)


def test_repo_id_shape() -> None:
    assert repo_id_problem("Qwen/Qwen2.5-7B-Instruct") is None
    for bad in ("gpt2", "a/b/c", "/x", "Org/", "Org/Na me", "Org/a--b", "Org/a..b"):
        assert repo_id_problem(bad), bad
    with pytest.raises(DownloadError, match="Org/Name"):
        download_model("gpt2", endpoint=None, output_dir=Path("unused"))


def test_progress_text() -> None:
    gib = 1024**3
    progress = DownloadProgress("Org/Name", int(1.2 * gib), int(14.2 * gib), 3, 7, "a.bin")
    assert progress.text() == "3/7 files, 1.2 GiB of 14.2 GiB"
    assert progress.fraction() == pytest.approx(1.2 / 14.2, rel=1e-3)
    unknown = DownloadProgress("Org/Name", 512, None, 0, None, None)
    assert unknown.fraction() is None and unknown.text() == "files, 512 B"


def test_progress_is_throttled(hub: FakeHub, tmp_path: Path) -> None:
    hub.throttle(4_000_000)  # ~0.5 s, thousands of small chunks
    seen: list[DownloadProgress] = []
    download_model("Org/Name", endpoint=hub.url, output_dir=tmp_path / "m", on_progress=seen.append)
    assert 2 <= len(seen) <= 25


def test_importing_hub_does_not_import_huggingface_hub() -> None:
    code = "import sys, vllm_console.core.hub.download; print('huggingface_hub' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
