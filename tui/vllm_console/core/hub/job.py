"""What `download` and `fetch` share about one download: its settings, the remote files, its
progress and its errors.

`download` (the public API, the probe, the error explanations) and `fetch` (the per-file work)
both build on this module and never on each other's private names. Nothing here imports
huggingface_hub or httpx at import time: importing the hub package stays cheap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllm_console.core.catalog.entry import format_bytes

ProgressCallback = Callable[["DownloadProgress"], None]


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


class Aborted(Exception):
    """Another file of the same download failed: stop this one quietly."""


@dataclass(frozen=True)
class Job:
    """One download's settings, fixed before the first request."""

    repo_id: str
    endpoint: str | None
    where: str  # the endpoint as shown to the user
    token: str | None
    local_dir: Path | None
    cache_dir: Path | None
    connect_timeout: float
    read_timeout: float
    retries: int  # transient failures in a row, without new bytes, before giving up on a file

    def timeout(self) -> Any:
        import httpx2

        return httpx2.Timeout(self.read_timeout, connect=self.connect_timeout)

    @property
    def storage(self) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / ("models--" + self.repo_id.replace("/", "--"))


@dataclass(frozen=True)
class Remote:
    """One file of the repo as the probe listed it."""

    name: str
    size: int | None
    blob_id: str | None
    lfs_sha256: str | None


class Tracker:
    """Sums progress from worker threads; reports to the callback at most every `interval` s."""

    def __init__(
        self,
        repo_id: str,
        files: list[Remote] | None,
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
            raise Aborted()

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
