"""core.hub.download_from_modelscope against a fake ModelScope site on 127.0.0.1: the real
`modelscope` library code runs, and the requests it makes are recorded."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fakes.fake_modelscope import FakeModelScope, MsRepo
from tests.fakes.hostile_http import HostileServer, Reply, response
from tests.fakes.net import free_port

from vllm_console.core.hub.download import (
    DownloadCancelled,
    DownloadError,
    DownloadProgress,
    download_from_modelscope,
)
from vllm_console.core.hub.modelscope import files_url

WEIGHTS = os.urandom(3_500_000)  # several of the library's 1 MiB chunks
FILES = {
    "config.json": b'{"model_type": "llama"}',
    "model.safetensors": WEIGHTS,
    "tokenizer/tokenizer.json": b'{"version": "1.0"}' * 10,
}
V1 = {"config.json": b'{"model_type": "llama", "v": 1}'}
TOTAL = sum(map(len, FILES.values()))
REFUSAL = '{"Code": 10010205001, "Message": "busy\\n\\u001b[2J", "Success": false}'


@pytest.fixture
def site() -> Iterator[FakeModelScope]:
    with FakeModelScope([MsRepo("Qwen/Qwen2.5-0.5B", {"master": FILES, "v1": V1})]) as fake:
        yield fake


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_download_into_the_cache_in_the_sdk_layout(site: FakeModelScope, tmp_path: Path) -> None:
    seen: list[DownloadProgress] = []
    path = download_from_modelscope(
        "Qwen/Qwen2.5-0.5B", endpoint=site.url, cache_dir=tmp_path, on_progress=seen.append
    )
    # modelscope >= 1.38: {cache}/models/ORG--NAME/snapshots/{revision}, dots kept.
    assert path == tmp_path / "models" / "Qwen--Qwen2.5-0.5B" / "snapshots" / "master"
    assert tree(path) == FILES
    assert list(tmp_path.rglob("*.incomplete")) == []
    pairs = [(p.downloaded_bytes, p.files_done) for p in seen]
    assert pairs == sorted(pairs), "progress went backwards"
    last = seen[-1]
    assert (last.downloaded_bytes, last.total_bytes) == (TOTAL, TOTAL)
    assert (last.files_done, last.files_total, last.current_file) == (3, 3, None)
    # Our probe, then the library: its listing, its region probe, one GET per file.
    listing = "/api/v1/models/Qwen/Qwen2.5-0.5B/repo/files?Revision=master&Recursive=True"
    paths = site.paths()
    assert paths[:2] == [listing, listing]
    assert len(site.file_gets()) == 3
    assert set(paths) - {listing, *site.file_gets()} <= {"/api/v1/repos/internalAccelerationInfo"}


def test_download_into_a_folder_then_nothing_again(site: FakeModelScope, tmp_path: Path) -> None:
    out = tmp_path / "models" / "Qwen--Qwen2.5-0.5B"
    assert download_from_modelscope("Qwen/Qwen2.5-0.5B", endpoint=site.url, output_dir=out) == out
    assert tree(out) == FILES
    site.requests.clear()
    seen: list[DownloadProgress] = []
    download_from_modelscope(
        "Qwen/Qwen2.5-0.5B", endpoint=site.url, output_dir=out, on_progress=seen.append
    )
    assert site.file_gets() == []
    # Counted as there before the library starts: it skips them without a word.
    assert (TOTAL, TOTAL, 3) in [(p.downloaded_bytes, p.total_bytes, p.files_done) for p in seen]


def test_revision_is_selected(site: FakeModelScope, tmp_path: Path) -> None:
    path = download_from_modelscope(
        "Qwen/Qwen2.5-0.5B", endpoint=site.url, revision="v1", cache_dir=tmp_path
    )
    assert path.name == "v1" and tree(path) == V1


def test_dropped_connection_is_resumed_with_range(site: FakeModelScope, tmp_path: Path) -> None:
    site.faults.drop_after["model.safetensors"] = 1_000_000
    path = download_from_modelscope("Qwen/Qwen2.5-0.5B", endpoint=site.url, cache_dir=tmp_path)
    assert tree(path) == FILES
    ranges = [h.get("Range") for _m, p, h in site.requests if "model.safetensors" in p]
    assert ranges[0] is None and ranges[-1] is not None and ranges[-1].startswith("bytes=")
    assert int(ranges[-1][6:-1]) > 0


def test_cancel_keeps_the_partial_file_and_the_next_run_resumes(
    site: FakeModelScope, tmp_path: Path
) -> None:
    site.faults.chunk_delay = 0.01  # long enough for progress reports between its chunks
    cancel = threading.Event()

    def stop_midway(progress: DownloadProgress) -> None:
        if progress.current_file == "model.safetensors" and progress.downloaded_bytes > 1 << 20:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        download_from_modelscope(
            "Qwen/Qwen2.5-0.5B",
            endpoint=site.url,
            cache_dir=tmp_path,
            on_progress=stop_midway,
            cancel=cancel,
            max_workers=1,
        )
    partial = list(tmp_path.rglob("model.safetensors.incomplete"))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < len(WEIGHTS)
    site.requests.clear()
    path = download_from_modelscope("Qwen/Qwen2.5-0.5B", endpoint=site.url, cache_dir=tmp_path)
    assert tree(path) == FILES
    resumed = [h.get("Range") for _m, p, h in site.requests if "model.safetensors" in p]
    assert resumed and resumed[0] is not None and resumed[0].startswith("bytes=")


def test_unreachable_endpoint_fails_fast(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download_from_modelscope("Org/Name", endpoint=url, cache_dir=tmp_path)
    assert time.monotonic() - started < 5
    assert str(info.value).startswith(f"cannot reach {url} (connection refused)")
    assert "MODELSCOPE_ENDPOINT" in str(info.value)


def test_unknown_repo_and_revision_are_one_line(site: FakeModelScope, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"^Org/Missing \(revision 'master'\) not found on"):
        download_from_modelscope("Org/Missing", endpoint=site.url, cache_dir=tmp_path)
    with pytest.raises(DownloadError, match=r"revision 'v9'\) not found"):
        download_from_modelscope(
            "Qwen/Qwen2.5-0.5B", endpoint=site.url, revision="v9", cache_dir=tmp_path
        )


def test_a_listing_that_is_not_json_is_named(site: FakeModelScope, tmp_path: Path) -> None:
    site.faults.garbage_listing = True
    with pytest.raises(DownloadError) as info:
        download_from_modelscope("Qwen/Qwen2.5-0.5B", endpoint=site.url, cache_dir=tmp_path)
    assert str(info.value) == (
        f"{site.url} is not answering like ModelScope (HTTP 200, an answer that is not JSON) "
        "for Qwen/Qwen2.5-0.5B"
    )


def test_lying_sizes_fail_clearly_and_leave_no_file(site: FakeModelScope, tmp_path: Path) -> None:
    site.faults.size_lie = 7
    with pytest.raises(DownloadError) as info:
        download_from_modelscope(
            "Qwen/Qwen2.5-0.5B", endpoint=site.url, output_dir=tmp_path / "m", max_workers=1
        )
    text = str(info.value)
    assert "size is not the one it lists" in text and text.endswith("run again to resume")
    assert "\n" not in text
    assert not (tmp_path / "m" / "model.safetensors").exists()


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            Reply(response('{"Code": 200, "Data": {"Files": [{"Path": "../../etc/x"}]}}')),
            "leaves the",
        ),
        (
            Reply(response('{"Code": 200, "Data": {"Files": [{"Path": "a", "Size": "9"}]}}')),
            "byte count",
        ),
        (Reply(response(REFUSAL)), "busy"),
        (Reply(response('{"Code": 200, "Data": {"Files": []}}')), "has no files"),
        (Reply(response('{"Code": 200, "Data": {"Files": [{"Pa')), "not JSON"),
    ],
)
def test_hostile_listings_are_one_clear_line(reply: Reply, expected: str, tmp_path: Path) -> None:
    with HostileServer() as server:
        server.answer({files_url("", "Org/Name", "master"): reply})
        with pytest.raises(DownloadError) as info:
            download_from_modelscope("Org/Name", endpoint=server.url, cache_dir=tmp_path)
    text = str(info.value)
    assert expected in text and "\n" not in text and "\x1b" not in text
    assert list(tmp_path.iterdir()) == []  # the library never started


def test_cache_and_folder_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        download_from_modelscope("Org/Name", endpoint=None, cache_dir=tmp_path, output_dir=tmp_path)
    with pytest.raises(DownloadError, match="not a hub id"):
        download_from_modelscope("not-an-id", endpoint=None, cache_dir=tmp_path)


def test_importing_the_hub_does_not_import_modelscope() -> None:
    code = (
        "import sys, vllm_console.core.hub.download, vllm_console.commands.download\n"
        "ms = ('modelscope', 'modelscope_hub')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ms))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
