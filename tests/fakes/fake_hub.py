"""A small Hugging Face hub on 127.0.0.1 that answers in the hub's shape, for download tests.

It is a real threaded HTTP server, so the real `huggingface_hub` client code runs against it.
It answers the requests huggingface_hub makes for `snapshot_download` / `hf_hub_download`:

- `GET /api/models/{org}/{name}[/revision/{rev}]`: `sha`, `siblings` (with sizes and `lfs`)
- `GET /api/models/{org}/{name}/tree/{rev}[/{path}]`: the file list (`type`, `oid`, `size`, `lfs`)
- `HEAD|GET /{org}/{name}/resolve/{rev}/{path}`: `X-Repo-Commit`, `ETag`, `Content-Length`;
  large ("LFS") files answer 302 to `/cdn/{sha256}` with `X-Linked-Etag` / `X-Linked-Size`,
  like the hub's redirect to its CDN
- `HEAD|GET /cdn/{sha256}` on a second port (another origin, as the hub's CDN is another host):
  the bytes, with `Range` support (206 + `Content-Range`)

Errors carry the hub's `X-Error-Code` header: an unknown repo is 404 `RepoNotFound`, a private
one 401 `RepoNotFound`, a gated one answers its API but 401 `GatedRepo` on files, an unknown
revision 404 `RevisionNotFound`. Faults for tests: drop the connection after N bytes of a file,
stall after N bytes, hang every request, throttle bodies. Every request is recorded.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

CHUNK = 64 * 1024


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeRepo:
    """A model repo: files per revision name. The first revision is the default branch."""

    repo_id: str
    revisions: dict[str, dict[str, bytes]]
    gated: bool = False
    private: bool = False
    lfs_min_size: int = 1024  # files at least this big are served like LFS files (302 to the CDN)

    @classmethod
    def single(cls, repo_id: str, files: dict[str, bytes], **kwargs: Any) -> FakeRepo:
        return cls(repo_id, {"main": files}, **kwargs)

    def commit(self, revision: str) -> str:
        digest = hashlib.sha1(f"{self.repo_id}@{revision}".encode())
        for name, data in sorted(self.revisions[revision].items()):
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        return digest.hexdigest()

    def resolve(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        """(commit hash, files) for a branch name or a commit hash; None if unknown."""
        for name, files in self.revisions.items():
            if revision in (name, self.commit(name)):
                return self.commit(name), files
        return None

    def is_lfs(self, data: bytes) -> bool:
        return len(data) >= self.lfs_min_size


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Faults:
    """What goes wrong, set by tests (all thread-safe enough for tests: read under the lock)."""

    drop_after: dict[str, tuple[int, int]] = field(default_factory=dict)  # file -> (bytes, times)
    stall_after: dict[str, int] = field(default_factory=dict)  # file -> bytes, then hang
    hang_all: bool = False  # accept, read the request, never answer
    bytes_per_second: float | None = None  # throttle file bodies


class FakeHub:
    """Use as a context manager: `with FakeHub([FakeRepo.single(...)]) as hub: hub.url`."""

    def __init__(
        self, repos: Iterable[FakeRepo] = (), *, redirect_lfs: bool = True, siblings: bool = True
    ) -> None:
        self.repos = {repo.repo_id: repo for repo in repos}
        self.redirect_lfs = redirect_lfs
        self.siblings = siblings  # False: the repo API lists no files, like a bare-bones mirror
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self.lock = threading.Lock()
        self.released = threading.Event()  # set on stop: wakes hanging handlers
        self._servers: list[ThreadingHTTPServer] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeHub:
        for _ in ("hub", "cdn"):
            server = _Server(("127.0.0.1", 0), _Handler)
            server.daemon_threads = True
            server.hub = self  # type: ignore[attr-defined]
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        self.released.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._servers, "FakeHub is not started"
        return int(self._servers[0].server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cdn_url(self) -> str:
        assert self._servers, "FakeHub is not started"
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    # -- test helpers ------------------------------------------------------------------------

    def add(self, repo: FakeRepo) -> None:
        self.repos[repo.repo_id] = repo

    def drop_after(self, filename: str, nbytes: int, times: int = 1) -> None:
        """The next `times` GETs of `filename` send `nbytes` of the body, then close."""
        with self.lock:
            self.faults.drop_after[filename] = (nbytes, times)

    def stall_after(self, filename: str, nbytes: int) -> None:
        with self.lock:
            self.faults.stall_after[filename] = nbytes

    def hang_all(self, on: bool = True) -> None:
        with self.lock:
            self.faults.hang_all = on

    def throttle(self, bytes_per_second: float | None) -> None:
        with self.lock:
            self.faults.bytes_per_second = bytes_per_second

    def recorded(self, method: str | None = None) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if method is None or r.method == method]

    def ranges(self) -> list[str]:
        """The Range headers of every body GET, in order."""
        return [r.headers["range"] for r in self.recorded("GET") if "range" in r.headers]

    def body_gets(self) -> list[RecordedRequest]:
        return [r for r in self.recorded("GET") if not r.path.startswith("/api/")]


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-body (cancel, timeout) is part of the tests, not an error.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"

    @property
    def hub(self) -> FakeHub:
        return self.server.hub  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._dispatch(body=True)

    def do_HEAD(self) -> None:
        self._dispatch(body=False)

    # -- routing -----------------------------------------------------------------------------

    def _dispatch(self, *, body: bool) -> None:
        hub = self.hub
        path = urlsplit(self.path).path
        with hub.lock:
            hub.requests.append(
                RecordedRequest(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}
                )
            )
            hang = hub.faults.hang_all
        if hang:
            hub.released.wait()
            self.close_connection = True
            return
        parts = [unquote(p) for p in path.split("/")[1:]]
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            self._api(parts[2] + "/" + parts[3], parts[4:])
        elif len(parts) >= 5 and parts[2] == "resolve":
            self._resolve(parts[0] + "/" + parts[1], parts[3], "/".join(parts[4:]), body=body)
        elif len(parts) == 2 and parts[0] == "cdn":
            self._cdn(parts[1], body=body)
        else:
            self._error(404, "EntryNotFound", f"no route for {path}")

    def _repo(self, repo_id: str, *, files_too: bool) -> FakeRepo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        if repo.private or (files_too and repo.gated):
            code = "RepoNotFound" if repo.private else "GatedRepo"
            self._error(401, code, f"Access to model {repo_id} is restricted.")
            return None
        return repo

    def _api(self, repo_id: str, rest: list[str]) -> None:
        repo = self._repo(repo_id, files_too=False)
        if repo is None:
            return
        kind, revision = (rest[0], rest[1]) if len(rest) >= 2 else ("revision", "main")
        if not rest:
            revision = next(iter(repo.revisions))
        resolved = repo.resolve(revision)
        if resolved is None or kind not in ("revision", "tree"):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        sha, files = resolved
        if kind == "tree":
            prefix = "/".join(rest[2:])
            entries = [_tree_entry(repo, n, d) for n, d in sorted(files.items())]
            self._json([e for e in entries if e["path"].startswith(prefix)])
            return
        info: dict[str, Any] = {
            "id": repo_id,
            "modelId": repo_id,
            "sha": sha,
            "private": repo.private,
            "gated": "manual" if repo.gated else False,
        }
        if self.hub.siblings:
            info["siblings"] = [_sibling(repo, n, d) for n, d in sorted(files.items())]
        self._json(info)

    def _resolve(self, repo_id: str, revision: str, filename: str, *, body: bool) -> None:
        repo = self._repo(repo_id, files_too=True)
        if repo is None:
            return
        resolved = repo.resolve(revision)
        if resolved is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        sha, files = resolved
        data = files.get(filename)
        if data is None:
            self._error(404, "EntryNotFound", f"{filename} does not exist", commit=sha)
            return
        if repo.is_lfs(data):
            digest = hashlib.sha256(data).hexdigest()
            if self.hub.redirect_lfs:
                self.send_response(302)
                self.send_header("Location", f"{self.hub.cdn_url}/cdn/{digest}")
                self.send_header("X-Repo-Commit", sha)
                self.send_header("X-Linked-Etag", f'"{digest}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("ETag", f'"{git_blob_sha1(_pointer(data))}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._file(filename, data, etag=digest, commit=sha, body=body)
        else:
            self._file(filename, data, etag=git_blob_sha1(data), commit=sha, body=body)

    def _cdn(self, digest: str, *, body: bool) -> None:
        for repo in self.hub.repos.values():
            for files in repo.revisions.values():
                for name, data in files.items():
                    if hashlib.sha256(data).hexdigest() == digest:
                        self._file(name, data, etag=digest, commit=None, body=body)
                        return
        self._error(404, "EntryNotFound", "no such blob")

    # -- answers -----------------------------------------------------------------------------

    def _file(self, name: str, data: bytes, *, etag: str, commit: str | None, body: bool) -> None:
        start, end = 0, len(data) - 1
        requested = self.headers.get("Range")
        status = 200
        if requested and requested.startswith("bytes="):
            first, _, last = requested[len("bytes=") :].partition("-")
            start = int(first or 0)
            end = min(int(last), end) if last else end
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("ETag", f'"{etag}"')
        if commit is not None:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if body:
            self._send_body(name, data[start : end + 1], offset=start)

    def _send_body(self, name: str, payload: bytes, *, offset: int) -> None:
        hub = self.hub
        with hub.lock:
            drop = hub.faults.drop_after.get(name)
            if drop is not None:
                nbytes, times = drop
                if times <= 1:
                    del hub.faults.drop_after[name]
                else:
                    hub.faults.drop_after[name] = (nbytes, times - 1)
            stall = hub.faults.stall_after.get(name)
            rate = hub.faults.bytes_per_second
        limit = len(payload)
        if drop is not None:
            limit = min(limit, max(drop[0] - offset, 0))
        if stall is not None:
            limit = min(limit, max(stall - offset, 0))
        for chunk in _chunks(payload[:limit], CHUNK if rate is None else max(int(rate / 20), 1)):
            self.wfile.write(chunk)
            self.wfile.flush()
            if rate is not None:
                time.sleep(len(chunk) / rate)
        if limit < len(payload):
            if drop is None and stall is not None:
                hub.released.wait()
            self.close_connection = True
            self.wfile.flush()

    def _json(self, payload: Any) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    def _error(self, status: int, code: str, message: str, *, commit: str | None = None) -> None:
        raw = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit is not None:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)


def _pointer(data: bytes) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    spec = "version https://git-lfs.github.com/spec/v1"
    return f"{spec}\noid sha256:{digest}\nsize {len(data)}\n".encode()


def _lfs_info(repo: FakeRepo, data: bytes) -> dict[str, Any] | None:
    if not repo.is_lfs(data):
        return None
    return {"size": len(data), "pointerSize": len(_pointer(data))}


def _tree_entry(repo: FakeRepo, name: str, data: bytes) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "file", "path": name, "size": len(data)}
    lfs = _lfs_info(repo, data)
    if lfs is None:
        entry["oid"] = git_blob_sha1(data)
    else:
        entry["oid"] = git_blob_sha1(_pointer(data))
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), **lfs}
    return entry


def _sibling(repo: FakeRepo, name: str, data: bytes) -> dict[str, Any]:
    sibling: dict[str, Any] = {"rfilename": name, "size": len(data)}
    lfs = _lfs_info(repo, data)
    if lfs is None:
        sibling["blobId"] = git_blob_sha1(data)
    else:
        sibling["blobId"] = git_blob_sha1(_pointer(data))
        sibling["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), **lfs}
    return sibling


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]
