"""Steps 2 and 3 of `hub.download_model`: per-file fetching with resume, then the library's check.

`prefetch` puts each file into a partial file where huggingface_hub would put its own (blobs
in the cache, or the folder's `.cache/huggingface/download`), under the library's lock, and
continues it with an HTTP Range request on the next try or run. `finalize` then runs
`snapshot_download` at the probed commit, with the tree listing seeded from the probe, which
checks everything and fetches what is left. What this shares with `download` is in `job`.

huggingface_hub is imported inside the functions (its private helpers through
`vllm_console.compat`), as in `download`.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vllm_console import compat
from vllm_console.core.catalog.entry import format_bytes
from vllm_console.core.hub.job import (
    Aborted,
    DownloadCancelled,
    DownloadError,
    Job,
    Remote,
    Tracker,
)

_COMMIT = re.compile(r"[0-9a-f]{40}")


def prefetch(job: Job, sha: str, files: list[Remote], tracker: Tracker, max_workers: int) -> None:
    """Step 2: every file the probe listed, `max_workers` at a time, each resumable. The first
    failure stops the others and is raised (a cancel only if nothing else failed)."""
    from concurrent.futures import ThreadPoolExecutor

    if not files:
        return
    errors: list[BaseException] = []
    done = [0]
    lock = threading.Lock()

    def one(remote: Remote) -> None:
        try:
            _fetch_file(job, sha, remote, tracker)
            with lock:
                done[0] += 1
                count = done[0]
            tracker.files_at_least(count, remote.name)
        except Aborted:
            pass
        except BaseException as exc:  # re-raised in the caller's thread below
            tracker.abort.set()
            with lock:
                errors.append(exc)

    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(files)))) as pool:
        try:
            list(pool.map(one, files))
        except BaseException:  # e.g. KeyboardInterrupt: let the workers stop at their next chunk
            tracker.abort.set()
            raise
    if errors:
        real = [e for e in errors if not isinstance(e, DownloadCancelled)]
        raise (real or errors)[0]


def _fetch_file(job: Job, sha: str, remote: Remote, tracker: Tracker) -> None:
    """Fetch one file into a resumable partial file, then put it where the library looks."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    tracker.check()
    url = hf_hub_url(job.repo_id, remote.name, revision=sha, endpoint=job.endpoint)
    meta = get_hf_file_metadata(url, token=job.token, timeout=job.timeout(), endpoint=job.endpoint)
    if meta.xet_file_data is not None and _xet_usable():
        return  # hf_xet downloads it in step 3, resuming from its own chunk cache
    etag = meta.etag
    if etag is None or meta.commit_hash != sha:
        return  # not what the hub answers: leave it to the library and its errors
    final, partial, lock_path = _placement(job, remote.name, etag)
    if final.is_file() and job.local_dir is not None:
        if compat.hf_local_etag(job.local_dir, remote.name) != etag:
            return  # some other file by that name: the library decides (hash, or replace)
        compat.hf_record_local_download(job.local_dir, remote.name, sha, etag)
        tracker.add(final.stat().st_size, remote.name)
        return
    if final.is_file():  # a blob, named by its content: done
        _link_snapshot(job, sha, remote.name, final)
        tracker.add(final.stat().st_size, remote.name)
        return
    headers = compat.hf_headers(job.token)
    if _origin(meta.location) != _origin(url):
        headers.pop("authorization", None)  # a signed CDN url: never send the token off the hub
    partial.parent.mkdir(parents=True, exist_ok=True)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with compat.hf_file_lock(lock_path):  # the lock the library takes for this file
        if not final.is_file():
            _stream(job, meta.location, headers, partial, meta.size, remote.name, tracker)
            final.parent.mkdir(parents=True, exist_ok=True)
            partial.replace(final)
    if job.local_dir is not None:
        # What the library writes after a download: step 3 then trusts the file as it is.
        compat.hf_record_local_download(job.local_dir, remote.name, sha, etag)
    else:
        _link_snapshot(job, sha, remote.name, final)


def _link_snapshot(job: Job, sha: str, name: str, blob: Path) -> None:
    """snapshots/<sha>/<name> -> blobs/<etag>, made by the library's own helper."""
    pointer = job.storage / "snapshots" / sha / name
    if not pointer.exists():
        pointer.parent.mkdir(parents=True, exist_ok=True)
        compat.hf_link_blob(blob, pointer)


def _placement(job: Job, name: str, etag: str) -> tuple[Path, Path, Path]:
    """(final file, partial file, lock file) in the layout huggingface_hub reads."""
    if job.local_dir is not None:
        download = job.local_dir / ".cache" / "huggingface" / "download"
        return (
            job.local_dir / name,
            download / f"{name}.{etag}.incomplete",
            download / f"{name}.lock",
        )
    assert job.cache_dir is not None
    blob = job.storage / "blobs" / etag
    lock = job.cache_dir / ".locks" / job.storage.name / f"{etag}.lock"  # the library's own lock
    return blob, blob.with_name(etag + ".incomplete"), lock


def _stream(
    job: Job,
    url: str,
    headers: dict[str, str],
    partial: Path,
    size: int | None,
    name: str,
    tracker: Tracker,
) -> None:
    import httpx2
    from huggingface_hub import get_session, hf_raise_for_status

    failures = 0
    have = partial.stat().st_size if partial.exists() else 0
    if size is not None and have > size:
        partial.unlink()
        have = 0
    tracker.add(have, name)
    while size is None or have < size:
        if size is not None:
            _check_space(partial.parent, size - have)
        request = {**headers, "Accept-Encoding": "identity"}  # byte offsets must be file offsets
        if have:
            request["Range"] = f"bytes={have}-"
        try:
            with get_session().stream("GET", url, headers=request, timeout=job.timeout()) as resp:
                if resp.status_code == 416:  # the partial file does not fit the remote one
                    partial.unlink(missing_ok=True)
                    tracker.add(-have)
                    have = 0
                    failures += 1
                    continue
                hf_raise_for_status(resp)
                if have and resp.status_code != 206:  # the server ignored Range: start over
                    tracker.add(-have)
                    have = 0
                with partial.open("ab" if have else "wb") as out:
                    for chunk in resp.iter_bytes():
                        tracker.check()
                        out.write(chunk)
                        have += len(chunk)
                        failures = 0
                        tracker.add(len(chunk), name)
            if size is None:
                return
            if have < size:
                raise httpx2.RemoteProtocolError("the server ended the file early")
        except httpx2.TransportError:
            failures += 1
            if failures > job.retries:
                raise
            tracker.sleep(1.0)
    if have != size:
        raise DownloadError(f"{name}: got {have} bytes, expected {size}; run again to retry")


def finalize(
    job: Job,
    revision: str | None,
    sha: str,
    files: list[Remote] | None,
    tracker: Tracker,
    max_workers: int,
) -> Path:
    """Step 3: `snapshot_download` at the probed commit checks the result and fetches what
    step 2 left (Xet-stored files, or everything without a file list); the folder it gives."""
    from huggingface_hub import snapshot_download

    if job.cache_dir is not None and not _COMMIT.fullmatch(revision or "main"):
        _write_ref(job.storage, revision or "main", sha)
    if files is not None:
        _seed_tree_cache(job, sha, files)
    folder = snapshot_download(
        job.repo_id,
        revision=sha,  # exactly what was probed, even if the branch moves meanwhile
        cache_dir=job.cache_dir,
        local_dir=job.local_dir,
        endpoint=job.endpoint,
        token=job.token,
        etag_timeout=job.read_timeout,
        max_workers=max_workers,
        tqdm_class=_bar_class(tracker),
    )
    return Path(folder)


def _seed_tree_cache(job: Job, sha: str, files: list[Remote]) -> None:
    """Write the listing snapshot_download would fetch, from the probe's answer."""
    entries: dict[str, tuple[int, str, str | None, int | None]] = {}
    for f in files:
        if f.size is None or f.blob_id is None:
            return  # an incomplete listing: let the library list the tree itself
        lfs_size = f.size if f.lfs_sha256 else None
        entries[f.name] = (f.size, f.blob_id, f.lfs_sha256, lfs_size)
    folder = job.local_dir / ".cache" / "huggingface" if job.local_dir else job.storage
    compat.hf_write_tree_cache(folder, sha, entries)  # False: an older library lists it


def _write_ref(storage: Path, revision: str, sha: str) -> None:
    ref = storage / "refs" / revision
    if ref.is_file() and ref.read_text() == sha:
        return
    ref.parent.mkdir(parents=True, exist_ok=True)
    tmp = ref.with_name(ref.name + ".tmp")
    tmp.write_text(sha)
    tmp.replace(ref)


class _LibraryBar:
    """Stands in for tqdm inside snapshot_download: feeds the tracker, draws nothing.

    snapshot_download makes a files bar ("Fetching N files", one update per file) and byte
    bars; the "Reconstructing" one counts the bytes written to disk.
    """

    tracker: Tracker

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        desc = str(kwargs.get("desc") or "")
        self.counts_files = desc.startswith("Fetching")
        self.counts_bytes = desc.startswith("Reconstructing")
        self.n = kwargs.get("initial") or 0
        self.total = kwargs.get("total")
        self.format_dict: dict[str, Any] = {"rate": None}

    def update(self, n: float | None = 1) -> None:
        self.tracker.check()
        step = int(n or 0)
        self.n += step
        if self.counts_files:
            self.tracker.files_at_least(self.n)
        elif self.counts_bytes:
            self.tracker.add(step)

    def __enter__(self) -> _LibraryBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __getattr__(self, name: str) -> Callable[..., None]:
        # refresh, close, set_description, set_postfix_str...: nothing to draw.
        return lambda *args, **kwargs: None


def _bar_class(tracker: Tracker) -> type[_LibraryBar]:
    return type("_Bar", (_LibraryBar,), {"tracker": tracker})


def _xet_usable() -> bool:
    from huggingface_hub import constants

    return compat.hf_xet_available() and not constants.HF_HUB_DISABLE_XET


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _check_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DownloadError(
            f"not enough disk space in {folder}: {format_bytes(needed)} more needed, "
            f"{format_bytes(free)} free"
        )
