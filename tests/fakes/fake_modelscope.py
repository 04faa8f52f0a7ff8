"""A small ModelScope site on 127.0.0.1 that answers in its API shape, for download tests.

A real threaded HTTP server, so the real `modelscope` library code runs against it. It
answers what `snapshot_download` (modelscope 1.40 / modelscope-hub 0.5) asks, read from the
library and checked by the tests' recorded requests:

- `GET /api/v1/models/{org}/{name}/repo/files?Revision=R&Recursive=True`: the file list,
  `{"Code": 200, "Success": true, "Data": {"Files": [{"Path", "Name", "Type", "Size",
  "Sha256", "Revision"}]}}`
- `GET /api/v1/models/{org}/{name}/repo?Revision=R&FilePath=P`: the bytes, with `Range`
  support (206 + `Content-Range`)
- `GET /api/v1/models/{org}/{name}`: the repo's information
- `GET /api/v1/repos/internalAccelerationInfo` (the library's cloud-region probe): 404, as
  anywhere outside the provider's cloud

An unknown repo or revision is 404 with the site's `{"Code", "Message", "Success": false}`.
Faults for tests: drop the connection after N bytes of a file (once), a listing that lies
about sizes, a listing that is not JSON, a delay between chunks. Every request is recorded.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

CHUNK = 64 * 1024


@dataclass
class MsRepo:
    repo_id: str
    revisions: dict[str, dict[str, bytes]]


@dataclass
class MsFaults:
    drop_after: dict[str, int] = field(default_factory=dict)  # file -> bytes, then close (once)
    size_lie: int = 0  # added to every listed size
    garbage_listing: bool = False
    chunk_delay: float = 0.0  # seconds between the chunks of a file


class FakeModelScope:
    def __init__(self, repos: list[MsRepo]) -> None:
        self.repos = {r.repo_id: r for r in repos}
        self.faults = MsFaults()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with fake.lock:
                    fake.requests.append(("GET", self.path, dict(self.headers)))
                fake.answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeModelScope:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        with self.lock:
            return [path for _method, path, _headers in self.requests]

    def file_gets(self) -> list[str]:
        return [p for p in self.paths() if "/repo?" in p]

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = unquote(parts.path)
        prefix = "/api/v1/models/"
        if not path.startswith(prefix):
            return self.json(handler, 404, {"Code": 404, "Message": "no route", "Success": False})
        rest = path[len(prefix) :]
        for repo_id, repo in self.repos.items():
            if rest == repo_id:
                return self.json(handler, 200, {"Code": 200, "Data": {"Path": repo_id}})
            if not rest.startswith(repo_id + "/"):
                continue
            files = repo.revisions.get(query.get("Revision", "master"))
            if files is None:
                return self.json(handler, 404, {"Code": 10010205001, "Message": "revision"})
            tail = rest[len(repo_id) + 1 :]
            if tail == "repo/files":
                return self.listing(handler, files)
            if tail == "repo" and query.get("FilePath") in files:
                return self.file(handler, query["FilePath"], files[query["FilePath"]])
        return self.json(handler, 404, {"Code": 10010205001, "Message": "model not found"})

    def listing(self, handler: BaseHTTPRequestHandler, files: dict[str, bytes]) -> None:
        if self.faults.garbage_listing:
            return self.send(handler, 200, b"<html>captive portal</html>", "text/html")
        entries = [
            {
                "Name": name.rsplit("/", 1)[-1],
                "Path": name,
                "Type": "blob",
                "Size": len(data) + self.faults.size_lie,
                "Sha256": hashlib.sha256(data).hexdigest(),
                "Revision": "c0ffee",
            }
            for name, data in sorted(files.items())
        ]
        return self.json(handler, 200, {"Code": 200, "Data": {"Files": entries}, "Success": True})

    def file(self, handler: BaseHTTPRequestHandler, name: str, data: bytes) -> None:
        start = 0
        ranged = handler.headers.get("Range", "")
        if ranged.startswith("bytes=") and ranged.endswith("-"):
            start = int(ranged[6:-1])
            if start >= len(data):
                return self.send(handler, 416, b"", "text/plain")
        body = data[start:]
        handler.send_response(206 if start else 200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(body)))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        with self.lock:
            cut = self.faults.drop_after.pop(name, None)
        if cut is not None:
            handler.wfile.write(body[: max(cut - start, 0)])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        for i in range(0, len(body), CHUNK):
            handler.wfile.write(body[i : i + CHUNK])
            time.sleep(self.faults.chunk_delay)

    def json(self, handler: BaseHTTPRequestHandler, status: int, data: Any) -> None:
        self.send(handler, status, json.dumps(data).encode(), "application/json")

    @staticmethod
    def send(handler: BaseHTTPRequestHandler, status: int, body: bytes, kind: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
