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

This module holds the public API, the probe and the error explanations; steps 2 and 3 are in
`fetch`, and what both share (the job's settings, the remote files, the progress tracker, the
errors) in `job`. huggingface_hub is imported inside the functions: importing this module
stays cheap.
"""

from __future__ import annotations

import errno
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vllm_console.core.hub.fetch import finalize, prefetch
from vllm_console.core.hub.job import (
    DownloadCancelled,
    DownloadError,
    DownloadProgress,
    Job,
    ProgressCallback,
    Remote,
    Tracker,
)
from vllm_console.core.hub.modelscope import download_from_modelscope

__all__ = [
    "DownloadCancelled",
    "DownloadError",
    "DownloadProgress",
    "ProgressCallback",
    "default_output_dir",
    "download_from_modelscope",
    "download_model",
    "repo_id_problem",
]

_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
RETRIES = 3  # transient failures in a row, without new bytes, before giving up on a file


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
    job = Job(
        repo_id=repo_id,
        endpoint=endpoint,
        where=where,
        token=token,
        local_dir=output_dir,
        cache_dir=cache_dir,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout or float(constants.HF_HUB_DOWNLOAD_TIMEOUT),
        retries=RETRIES,
    )
    with _explained(job, revision):
        sha, files = _probe(job, revision)
        tracker = Tracker(repo_id, files, on_progress, cancel)
        tracker.emit(force=True)
        prefetch(job, sha, files or [], tracker, max_workers)
        tracker.check()
        path = finalize(job, revision, sha, files, tracker, max_workers)
    tracker.emit(done=True)
    return path


def _probe(job: Job, revision: str | None) -> tuple[str, list[Remote] | None]:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=job.endpoint, token=job.token)
    # The hint says float, but the call hands it to httpx, which takes a Timeout.
    info = api.model_info(
        job.repo_id, revision=revision, files_metadata=True, timeout=job.timeout()
    )
    if not info.sha:
        raise DownloadError(f"{job.where} gave no commit for {job.repo_id}: is it a hub mirror?")
    if info.siblings is None:
        return info.sha, None
    return info.sha, [
        Remote(s.rfilename, s.size, s.blob_id, s.lfs.sha256 if s.lfs else None)
        for s in info.siblings
    ]


@contextmanager
def _explained(job: Job, revision: str | None) -> Iterator[None]:
    """Turn whatever huggingface_hub, httpx or the disk raise into a one-line DownloadError."""
    try:
        yield
    except DownloadError:
        raise
    except Exception as exc:
        raise DownloadError(_explain(exc, job, revision)) from exc


def _explain(exc: BaseException, job: Job, revision: str | None) -> str:
    import httpx2
    from huggingface_hub import errors

    where, repo = job.where, job.repo_id
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
        return _explain(cause, job, revision)  # "not in the cache" hides the network's answer
    if isinstance(exc, httpx2.ConnectTimeout):
        return f"cannot reach {where} (no connection within {job.connect_timeout:g} s): {check}"
    if isinstance(exc, httpx2.ConnectError):
        return f"cannot reach {where} ({_connect_reason(exc)}): {check}"
    if isinstance(exc, httpx2.TimeoutException):
        return (
            f"{where} stopped answering (nothing for {job.read_timeout:g} s): {check}; "
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
