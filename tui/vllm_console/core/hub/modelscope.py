"""Downloads from ModelScope (or a site in its API shape) through the `modelscope` library.

`download_from_modelscope` takes the arguments `download.download_model` takes and runs in
two steps:

1. Probe: the listing request the library makes first
   (`GET {endpoint}/api/v1/models/ORG/NAME/repo/files`), with httpx under short timeouts. An
   unreachable endpoint, an unknown repo or revision, or an answer that is no file list fail
   here within seconds, as one clear line: the library retries a failing listing with
   backoff for minutes. The listing's sizes give the progress its total. A private repo
   (401/403) goes on to step 2, where the library may know a token the probe does not.
2. `snapshot_download` from `modelscope` fetches everything: its own layout (the folder
   given, or its cache: `{cache}/models/ORG--NAME/snapshots/{revision}`, or an older
   layout's folder it finds), its `.incomplete` files resumed with Range requests on the next
   run, sizes and sha256 checked. Bytes reach the progress through the library's callback
   class, which is also where a cancel stops it; its progress bars and log lines stay off
   the terminal (the console draws its own).

The library (0.5 s to import) and httpx are imported inside the functions.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from vllm_console.core.hub.job import (
    DownloadCancelled,
    DownloadError,
    ProgressCallback,
    Remote,
    Tracker,
)
from vllm_console.core.hub.ms_listing import MAX_BODY, ListingError, parse_listing

DEFAULT_ENDPOINT = "https://www.modelscope.cn"
_SDK_LOGGERS = ("modelscope_hub", "modelscope")
_CHECK = "check MODELSCOPE_ENDPOINT (or MODELSCOPE_DOMAIN) or your network"


class _Stop(BaseException):
    """Raised in the library's threads to stop it: it retries any Exception, not this."""


def download_from_modelscope(
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
    read_timeout: float = 30.0,
    max_workers: int = 4,
) -> Path:
    """Download `repo_id` from ModelScope into `output_dir`, or into `cache_dir` (its cache).

    Exactly one of the two is given. Returns the folder holding the files. `endpoint` None
    means ModelScope's own site. `token` None lets the library find one (its login, or
    MODELSCOPE_API_TOKEN). Progress and errors as for `download.download_model`.
    """
    from vllm_console.core.hub.download import repo_id_problem

    if (output_dir is None) == (cache_dir is None):
        raise ValueError("give exactly one of output_dir and cache_dir")
    problem = repo_id_problem(repo_id)
    if problem is not None:
        raise DownloadError(problem)
    where = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
    rev = revision or "master"
    files = _probe(where, repo_id, rev, token, connect_timeout, read_timeout)
    tracker = Tracker(repo_id, files, on_progress, cancel)
    tracker.check()
    if output_dir is not None and files:
        _count_present(output_dir, files, tracker)
    tracker.emit(force=True)
    try:
        with _sdk_quiet():
            from modelscope.hub.snapshot_download import snapshot_download

            folder = snapshot_download(
                repo_id,
                revision=rev,
                cache_dir=cache_dir,
                local_dir=str(output_dir) if output_dir is not None else None,
                endpoint=where,
                token=token,
                max_workers=max_workers,
                progress_callbacks=[_callback_class(tracker)],
            )
    except _Stop:
        raise DownloadCancelled() from None
    except DownloadError:
        raise
    except Exception as exc:
        raise DownloadError(explain(exc, where, repo_id, rev)) from exc
    tracker.emit(done=True)
    return Path(folder)


def files_url(endpoint: str, repo_id: str, revision: str) -> str:
    """The listing the library asks for first (its `list_repo_files`)."""
    query = f"Revision={quote(revision, safe='')}&Recursive=True"
    return f"{endpoint}/api/v1/models/{quote(repo_id, safe='/')}/repo/files?{query}"


def _probe(
    where: str, repo_id: str, rev: str, token: str | None, connect: float, read: float
) -> list[Remote] | None:
    """The repo's files, or None when the probe cannot see them but the library might."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = httpx.Timeout(read, connect=connect)
    try:
        with httpx.stream(
            "GET", files_url(where, repo_id, rev), headers=headers, timeout=timeout
        ) as resp:
            status = resp.status_code
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    break
    except httpx.ConnectTimeout:
        raise DownloadError(
            f"cannot reach {where} (no connection within {connect:g} s): {_CHECK}"
        ) from None
    except httpx.ConnectError as exc:
        raise DownloadError(f"cannot reach {where} ({_connect_reason(exc)}): {_CHECK}") from None
    except httpx.TimeoutException:
        raise DownloadError(
            f"{where} stopped answering (nothing for {read:g} s): {_CHECK}"
        ) from None
    except httpx.HTTPError as exc:
        raise DownloadError(f"connection to {where} failed ({_line(str(exc))})") from None
    if status in (401, 403) and not token:
        return None  # private: the library may hold a token (its login)
    if status == 404:
        raise DownloadError(f"{repo_id} (revision {rev!r}) not found on {where} (HTTP 404)")
    try:
        files = parse_listing(bytes(body))
    except ListingError as exc:
        raise DownloadError(
            f"{where} is not answering like ModelScope (HTTP {status}, {exc}) for {repo_id}"
        ) from None
    if status >= 400:
        raise DownloadError(f"{where} answered HTTP {status} for {repo_id}")
    if not files:
        raise DownloadError(f"{repo_id} (revision {rev!r}) has no files on {where}")
    return files


def _count_present(folder: Path, files: list[Remote], tracker: Tracker) -> None:
    """Files already complete in the folder: the library skips them without a callback."""
    sizes = []
    for remote in files:
        try:
            if (folder / remote.name).stat().st_size == remote.size:
                sizes.append(remote.size)
        except OSError:
            pass
    if sizes:
        tracker.files_at_least(len(sizes))
        tracker.add(sum(sizes))


def _callback_class(tracker: Tracker) -> type:
    """A `modelscope_hub.ProgressCallback` subclass feeding `tracker` (the library wants a
    class: it makes one per file, with the file's name and size)."""
    from modelscope.hub.callback import ProgressCallback as Base

    finished = [0]
    lock = threading.Lock()

    class Callback(Base):  # type: ignore[misc]
        def __init__(self, filename: str, file_size: int) -> None:
            super().__init__(filename, file_size)
            self.received = 0
            self.stop_if_cancelled()

        def stop_if_cancelled(self) -> None:
            try:
                tracker.check()
            except DownloadCancelled:
                raise _Stop() from None

        def update(self, size: int) -> None:
            self.stop_if_cancelled()
            self.received += size
            tracker.add(size, self.filename)

        def end(self) -> None:  # also called when the file failed
            if self.file_size and self.received >= self.file_size:
                with lock:
                    finished[0] += 1
                    count = finished[0]
                tracker.files_at_least(count, self.filename)

    return Callback


@contextmanager
def _sdk_quiet() -> Iterator[None]:
    """No progress bars and no log lines from the library on the terminal while it runs."""
    from vllm_console import compat

    compat.ms_silence_bars()
    loggers = [logging.getLogger(name) for name in _SDK_LOGGERS]
    saved = [(lg.handlers[:], lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.handlers = [logging.NullHandler()]
        lg.propagate = False
    try:
        yield
    finally:
        for lg, (handlers, propagate) in zip(loggers, saved, strict=True):
            lg.handlers, lg.propagate = handlers, propagate


def explain(exc: BaseException, where: str, repo_id: str, rev: str) -> str:
    """One line for whatever the library, requests or the disk raised."""
    from modelscope_hub import errors

    if isinstance(exc, errors.FileDownloadError) and exc.failed_files:
        name, first = next(iter(exc.failed_files.items()))
        count = len(exc.failed_files)
        files = f"{count} files failed" if count > 1 else f"{name} failed"
        return f"{files} ({_why(first, where, repo_id, rev)}); run again to resume"
    return _why(exc, where, repo_id, rev)


def _why(exc: BaseException, where: str, repo_id: str, rev: str) -> str:
    import requests
    from modelscope_hub import errors

    if isinstance(exc, errors.NotExistError) or _status(exc) == 404:
        return f"{repo_id} (revision {rev!r}) not found on {where}"
    if isinstance(exc, errors.AuthenticationError | errors.PermissionDeniedError) or _status(
        exc
    ) in (401, 403):
        return (
            f"{repo_id} is private on {where} or needs a token: log in (modelscope login) "
            "or set MODELSCOPE_API_TOKEN"
        )
    if isinstance(exc, errors.FileSizeMismatchError):
        return f"{where} sent a file whose size is not the one it lists ({_line(exc.message)})"
    if isinstance(exc, errors.FileIntegrityError):
        return f"a file from {where} failed its sha256 check ({_line(exc.message)})"
    if isinstance(exc, requests.Timeout | errors.RequestTimeoutError):
        return f"{where} stopped answering: {_CHECK}"
    if isinstance(exc, requests.ConnectionError | errors.NetworkError):
        return f"connection to {where} failed ({_line(str(exc))}): {_CHECK}"
    if isinstance(exc, errors.APIError):
        return f"{where} answered HTTP {exc.status_code} for {repo_id}: {_line(exc.message)}"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"disk full while downloading {repo_id}: free some space, then run again"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot write {exc.filename or 'the download'}: {exc.strerror}"
    if isinstance(exc, ValueError):  # the library's answer to a listing it cannot read
        return f"{where} is not answering like ModelScope ({_line(str(exc))})"
    return f"download of {repo_id} failed: {_line(str(exc)) or type(exc).__name__}"


def _status(exc: BaseException) -> int | None:
    response: Any = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _connect_reason(exc: Exception) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service" in text or "nodename" in text or "getaddrinfo" in text:
        return "host name not found"
    return _line(str(exc)) or "connection failed"


def _line(text: str | None) -> str:
    stripped = (text or "").strip()
    return stripped.splitlines()[0][:200] if stripped else ""
