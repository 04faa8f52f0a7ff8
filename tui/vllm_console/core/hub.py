"""Downloads through huggingface_hub, from the hub or a mirror (HF_ENDPOINT), with resume.

`download_model` runs in three steps, all through huggingface_hub's own client and functions:

1. Probe: one `model_info` call (with file sizes) under short timeouts. An unreachable
   endpoint, an unknown or private repo, or a wrong revision fail here within seconds, as one
   clear line (a gated repo fails at its first file).
2. Each file is fetched (the library's HEAD, session and errors, our timeouts) into a partial
   file that survives an interruption (a cancel, Ctrl-C, a dropped connection, a crash); the
   next run continues it with an HTTP Range request. huggingface_hub deletes its own partial
   files on any error, so it cannot resume them. Files land where the library puts them:
   blobs + snapshot symlinks in the cache, or the folder + its `.cache/huggingface` metadata.
3. `snapshot_download` at the probed commit checks the result and fetches what step 2 left to
   it: Xet-stored files (hf_xet keeps its own chunk cache, which is its resume), or everything
   when the endpoint gave no file list. The tree listing is seeded from step 1, so this step
   makes no request without a timeout (the library's own listing call has none).

huggingface_hub is imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import errno
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ProgressCallback = Callable[["DownloadProgress"], None]

_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_RETRIES = 3  # transient failures in a row, without new bytes, before giving up on a file


@dataclass(frozen=True)
class DownloadProgress:
    repo_id: str
    downloaded_bytes: int
    total_bytes: int | None
    files_done: int
    files_total: int | None
    current_file: str | None

    def fraction(self) -> float | None:
        if not self.total_bytes:
            return None
        return min(self.downloaded_bytes / self.total_bytes, 1.0)

    def text(self) -> str:
        files = f"{self.files_done}/{self.files_total} files" if self.files_total else "files"
        size = format_bytes(self.downloaded_bytes)
        if self.total_bytes is not None:
            size += f" of {format_bytes(self.total_bytes)}"
        return f"{files}, {size}"


class DownloadError(Exception):
    """A download failed; the message is one line for the user."""


class DownloadCancelled(DownloadError):
    """The caller's cancel event was set; partial files stay for the next run to resume."""

    def __init__(self) -> None:
        super().__init__("download cancelled; run it again to resume")


class _Aborted(Exception):
    """Another file of the same download failed: stop this one quietly."""


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def repo_id_problem(repo_id: str) -> str | None:
    """Why `repo_id` is not an Org/Name hub id, or None when it is one."""
    if not _REPO_ID.fullmatch(repo_id):
        return f"{repo_id!r} is not a hub id of the form Org/Name"
    if "--" in repo_id or ".." in repo_id or repo_id.endswith((".", "-")):
        return f"{repo_id!r} is not a valid hub id ('--' and '..' are not allowed)"
    return None


def default_output_dir(models_dir: Path, repo_id: str) -> Path:
    """`models_dir/Org--Name`, the layout of the original download script."""
    return models_dir / repo_id.replace("/", "--")


@dataclass(frozen=True)
class _Remote:
    name: str
    size: int | None
    blob_id: str | None
    lfs_sha256: str | None


class _Tracker:
    """Sums progress from worker threads; reports to the callback at most every `interval` s."""

    def __init__(
        self,
        repo_id: str,
        files: list[_Remote] | None,
        on_progress: ProgressCallback | None,
        cancel: threading.Event | None,
        interval: float = 0.1,
    ) -> None:
        self.repo_id, self.on_progress, self.cancel = repo_id, on_progress, cancel
        self.interval = interval
        self.files_total = len(files) if files is not None else None
        sizes = [f.size for f in files] if files is not None else [None]
        self.total = sum(s for s in sizes if s is not None) if None not in sizes else None
        self.abort = threading.Event()
        self._lock = threading.Lock()
        self._bytes = self._files = 0
        self._current: str | None = None
        self._last_emit = 0.0
        self._shown = (0, 0)

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise DownloadCancelled()
        if self.abort.is_set():
            raise _Aborted()

    def sleep(self, seconds: float) -> None:
        if self.cancel is not None:
            self.cancel.wait(seconds)
        else:
            time.sleep(seconds)
        self.check()

    def add(self, n: int, current: str | None = None) -> None:
        with self._lock:
            self._bytes += n
            self._current = current or self._current
        self.emit()

    def files_at_least(self, n: int, current: str | None = None) -> None:
        with self._lock:
            self._files = max(self._files, n)
            self._current = current or self._current
        self.emit()

    def emit(self, *, force: bool = False, done: bool = False) -> None:
        if self.on_progress is None:
            return
        with self._lock:
            now = time.monotonic()
            if not (force or done) and now - self._last_emit < self.interval:
                return
            self._last_emit = now
            if done:
                self._bytes = max(self._bytes, self.total or 0)
                self._files = max(self._files, self.files_total or 0)
            # Restarted transfers may step back; what the user sees never does.
            shown = (max(self._shown[0], self._bytes), max(self._shown[1], self._files))
            self._shown = shown
            current = None if done else self._current
            progress = DownloadProgress(
                self.repo_id, shown[0], self.total, shown[1], self.files_total, current
            )
            # Under the lock, so that callbacks from several threads arrive in order.
            self.on_progress(progress)


def download_model(
    repo_id: str,
    *,
    endpoint: str | None,
    revision: str | None = None,
    output_dir: Path | None = None,
    cache_dir: Path | None = None,
    token: str | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    connect_timeout: float = 5.0,
    read_timeout: float | None = None,
    max_workers: int = 4,
) -> Path:
    """Download `repo_id` into `output_dir` (a plain folder) or `cache_dir` (the HF cache layout).

    Exactly one of the two is given. Returns the folder, or the snapshot folder in the cache.
    `endpoint` None means huggingface_hub's default. `read_timeout` None means the library's
    HF_HUB_DOWNLOAD_TIMEOUT. `token` None lets huggingface_hub find one (HF_TOKEN, login).
    `on_progress` is called from the download's threads, at most ~10 times a second and once
    at the end with everything done: keep it quick (post a message, write a line).
    Raises DownloadError (DownloadCancelled when `cancel` is set) with a one-line message.
    """
    if (output_dir is None) == (cache_dir is None):
        raise ValueError("give exactly one of output_dir and cache_dir")
    problem = repo_id_problem(repo_id)
    if problem is not None:
        raise DownloadError(problem)
    from huggingface_hub import constants

    where = (endpoint or constants.ENDPOINT).rstrip("/")
    ctx = _Context(
        repo_id=repo_id,
        endpoint=endpoint,
        where=where,
        token=token,
        local_dir=output_dir,
        cache_dir=cache_dir,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout or float(constants.HF_HUB_DOWNLOAD_TIMEOUT),
    )
    with _explained(ctx, revision):
        sha, files = _probe(ctx, revision)
        tracker = _Tracker(repo_id, files, on_progress, cancel)
        tracker.emit(force=True)
        _prefetch(ctx, sha, files or [], tracker, max_workers)
        tracker.check()
        path = _finalize(ctx, revision, sha, files, tracker, max_workers)
    tracker.emit(done=True)
    return path


@dataclass(frozen=True)
class _Context:
    repo_id: str
    endpoint: str | None
    where: str  # the endpoint as shown to the user
    token: str | None
    local_dir: Path | None
    cache_dir: Path | None
    connect_timeout: float
    read_timeout: float

    def timeout(self) -> Any:
        import httpx2

        return httpx2.Timeout(self.read_timeout, connect=self.connect_timeout)

    @property
    def storage(self) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / ("models--" + self.repo_id.replace("/", "--"))


def _probe(ctx: _Context, revision: str | None) -> tuple[str, list[_Remote] | None]:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=ctx.endpoint, token=ctx.token)
    # The hint says float, but the call hands it to httpx, which takes a Timeout.
    info = api.model_info(
        ctx.repo_id, revision=revision, files_metadata=True, timeout=ctx.timeout()
    )
    if not info.sha:
        raise DownloadError(f"{ctx.where} gave no commit for {ctx.repo_id}: is it a hub mirror?")
    if info.siblings is None:
        return info.sha, None
    return info.sha, [
        _Remote(s.rfilename, s.size, s.blob_id, s.lfs.sha256 if s.lfs else None)
        for s in info.siblings
    ]


def _prefetch(
    ctx: _Context, sha: str, files: list[_Remote], tracker: _Tracker, max_workers: int
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    if not files:
        return
    errors: list[BaseException] = []
    done = [0]
    lock = threading.Lock()

    def one(remote: _Remote) -> None:
        try:
            _fetch_file(ctx, sha, remote, tracker)
            with lock:
                done[0] += 1
                count = done[0]
            tracker.files_at_least(count, remote.name)
        except _Aborted:
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


def _fetch_file(ctx: _Context, sha: str, remote: _Remote, tracker: _Tracker) -> None:
    """Fetch one file into a resumable partial file, then put it where the library looks."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub._local_folder import read_download_metadata, write_download_metadata
    from huggingface_hub.utils._fixes import WeakFileLock
    from huggingface_hub.utils._headers import build_hf_headers

    tracker.check()
    url = hf_hub_url(ctx.repo_id, remote.name, revision=sha, endpoint=ctx.endpoint)
    meta = get_hf_file_metadata(url, token=ctx.token, timeout=ctx.timeout(), endpoint=ctx.endpoint)
    if meta.xet_file_data is not None and _xet_usable():
        return  # hf_xet downloads it in step 3, resuming from its own chunk cache
    etag = meta.etag
    if etag is None or meta.commit_hash != sha:
        return  # not what the hub answers: leave it to the library and its errors
    final, partial, lock_path = _placement(ctx, remote.name, etag)
    if final.is_file() and ctx.local_dir is not None:
        known = read_download_metadata(ctx.local_dir, remote.name)
        if known is None or known.etag != etag:
            return  # some other file by that name: the library decides (hash, or replace)
        write_download_metadata(ctx.local_dir, remote.name, commit_hash=sha, etag=etag)
        tracker.add(final.stat().st_size, remote.name)
        return
    if final.is_file():  # a blob, named by its content: done
        _link_snapshot(ctx, sha, remote.name, final)
        tracker.add(final.stat().st_size, remote.name)
        return
    headers = build_hf_headers(token=ctx.token)
    if _origin(meta.location) != _origin(url):
        headers.pop("authorization", None)  # a signed CDN url: never send the token off the hub
    partial.parent.mkdir(parents=True, exist_ok=True)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(lock_path):  # the lock the library takes for this file
        if not final.is_file():
            _stream(ctx, meta.location, headers, partial, meta.size, remote.name, tracker)
            final.parent.mkdir(parents=True, exist_ok=True)
            partial.replace(final)
    if ctx.local_dir is not None:
        # What the library writes after a download: step 3 then trusts the file as it is.
        write_download_metadata(ctx.local_dir, remote.name, commit_hash=sha, etag=etag)
    else:
        _link_snapshot(ctx, sha, remote.name, final)


def _link_snapshot(ctx: _Context, sha: str, name: str, blob: Path) -> None:
    """snapshots/<sha>/<name> -> blobs/<etag>, made by the library's own helper."""
    from huggingface_hub.file_download import _create_symlink

    pointer = ctx.storage / "snapshots" / sha / name
    if not pointer.exists():
        pointer.parent.mkdir(parents=True, exist_ok=True)
        _create_symlink(str(blob), str(pointer), new_blob=False)


def _placement(ctx: _Context, name: str, etag: str) -> tuple[Path, Path, Path]:
    """(final file, partial file, lock file) in the layout huggingface_hub reads."""
    if ctx.local_dir is not None:
        download = ctx.local_dir / ".cache" / "huggingface" / "download"
        return (
            ctx.local_dir / name,
            download / f"{name}.{etag}.incomplete",
            download / f"{name}.lock",
        )
    assert ctx.cache_dir is not None
    blob = ctx.storage / "blobs" / etag
    lock = ctx.cache_dir / ".locks" / ctx.storage.name / f"{etag}.lock"  # the library's own lock
    return blob, blob.with_name(etag + ".incomplete"), lock


def _stream(
    ctx: _Context,
    url: str,
    headers: dict[str, str],
    partial: Path,
    size: int | None,
    name: str,
    tracker: _Tracker,
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
            with get_session().stream("GET", url, headers=request, timeout=ctx.timeout()) as resp:
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
            if failures > _RETRIES:
                raise
            tracker.sleep(1.0)
    if have != size:
        raise DownloadError(f"{name}: got {have} bytes, expected {size}; run again to retry")


def _finalize(
    ctx: _Context,
    revision: str | None,
    sha: str,
    files: list[_Remote] | None,
    tracker: _Tracker,
    max_workers: int,
) -> Path:
    from huggingface_hub import snapshot_download

    if ctx.cache_dir is not None and not _COMMIT.fullmatch(revision or "main"):
        _write_ref(ctx.storage, revision or "main", sha)
    if files is not None:
        _seed_tree_cache(ctx, sha, files)
    folder = snapshot_download(
        ctx.repo_id,
        revision=sha,  # exactly what was probed, even if the branch moves meanwhile
        cache_dir=ctx.cache_dir,
        local_dir=ctx.local_dir,
        endpoint=ctx.endpoint,
        token=ctx.token,
        etag_timeout=ctx.read_timeout,
        max_workers=max_workers,
        tqdm_class=_bar_class(tracker),
    )
    return Path(folder)


def _seed_tree_cache(ctx: _Context, sha: str, files: list[_Remote]) -> None:
    """Write the listing snapshot_download would fetch, from the probe's answer."""
    try:
        from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache
    except ImportError:  # an older huggingface_hub: it lists the tree itself
        return
    entries = {}
    for f in files:
        if f.size is None or f.blob_id is None:
            return
        lfs_size = f.size if f.lfs_sha256 else None
        entries[f.name] = TreeCacheEntry(f.size, f.blob_id, f.lfs_sha256, lfs_size)
    folder = ctx.local_dir / ".cache" / "huggingface" if ctx.local_dir else ctx.storage
    write_tree_cache(str(folder), sha, entries)


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

    tracker: _Tracker

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


def _bar_class(tracker: _Tracker) -> type[_LibraryBar]:
    return type("_Bar", (_LibraryBar,), {"tracker": tracker})


def _xet_usable() -> bool:
    from huggingface_hub import constants
    from huggingface_hub.utils._runtime import is_xet_available

    return bool(is_xet_available()) and not constants.HF_HUB_DISABLE_XET


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


@contextmanager
def _explained(ctx: _Context, revision: str | None) -> Iterator[None]:
    """Turn whatever huggingface_hub, httpx or the disk raise into a one-line DownloadError."""
    try:
        yield
    except DownloadError:
        raise
    except Exception as exc:
        raise DownloadError(_explain(exc, ctx, revision)) from exc


def _explain(exc: BaseException, ctx: _Context, revision: str | None) -> str:
    import httpx2
    from huggingface_hub import errors

    where, repo = ctx.where, ctx.repo_id
    check = "check HF_ENDPOINT or your network"
    if isinstance(exc, errors.GatedRepoError):
        return (
            f"{repo} is gated on {where}: accept its terms on the model page, then log in "
            "(hf auth login) or set HF_TOKEN"
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        status = exc.response.status_code if exc.response is not None else 404
        if status == 401:
            return f"{repo} not found on {where}, or it is private and needs a token (HTTP 401)"
        return f"{repo} not found on {where} (HTTP {status})"
    if isinstance(exc, errors.RevisionNotFoundError):
        return f"revision {revision or 'main'!r} not found in {repo} on {where}"
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set: downloads are switched off"
    if isinstance(exc, errors.HfHubHTTPError) and exc.response is not None:
        detail = exc.server_message or exc.response.reason_phrase
        return f"{where} answered HTTP {exc.response.status_code} for {repo}: {_line(detail)}"
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, errors.LocalEntryNotFoundError) and cause is not None:
        return _explain(cause, ctx, revision)  # "not in the cache" hides the network's answer
    if isinstance(exc, httpx2.ConnectTimeout):
        return f"cannot reach {where} (no connection within {ctx.connect_timeout:g} s): {check}"
    if isinstance(exc, httpx2.ConnectError):
        return f"cannot reach {where} ({_connect_reason(exc)}): {check}"
    if isinstance(exc, httpx2.TimeoutException):
        return (
            f"{where} stopped answering (nothing for {ctx.read_timeout:g} s): {check}; "
            "run again to resume"
        )
    if isinstance(exc, httpx2.TransportError):
        return f"connection to {where} failed ({_line(str(exc))}); run again to resume"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"disk full while downloading {repo}: free some space, then run again to resume"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot write {exc.filename or 'the download'}: {exc.strerror}"
    return f"download of {repo} failed: {_line(str(exc)) or type(exc).__name__}"


def _connect_reason(exc: Exception) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service" in text or "nodename" in text or "getaddrinfo" in text:
        return "host name not found"
    return _line(str(exc)) or "connection failed"


def _line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0][:200] if (text or "").strip() else ""
