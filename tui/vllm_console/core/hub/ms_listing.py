"""ModelScope's answer to a file listing, read without trusting it.

`GET {endpoint}/api/v1/models/ORG/NAME/repo/files?Revision=R&Recursive=True` is the first
request the `modelscope` library makes for a snapshot download. It answers
`{"Code": 200, "Success": true, "Data": {"Files": [{"Path", "Type", "Size", "Sha256"}, ...]}}`
(older servers put the list in `Data` itself); a refusal says why in `Message`. `parse_listing`
turns those bytes into the files to fetch, or a `ListingError` saying in one line what was
wrong with them: the bytes come from a server, or from anything that answers in its place.
"""

from __future__ import annotations

import json
import re
from typing import Any

from vllm_console.core.hub.job import Remote

MAX_FILES = 100_000  # far beyond any model repo: a longer list is not an answer to trust
MAX_BODY = 32 << 20  # bytes of listing read at most
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class ListingError(Exception):
    """The listing is not a ModelScope file list; the message is one line for the user."""


def parse_listing(body: bytes) -> list[Remote]:
    """The files (not folders) of a listing, in its order; sizes and sha256 where given."""
    if len(body) > MAX_BODY:
        raise ListingError(f"a file list over {MAX_BODY >> 20} MiB")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ListingError("an answer that is not JSON") from None
    if not isinstance(data, dict):
        raise ListingError("JSON that is not an object")
    refused = data.get("Success") is False or data.get("Code") not in (None, 200, "200")
    if refused:
        raise ListingError(f"a refusal: {_message(data)}")
    listed = data.get("Data", data)
    if isinstance(listed, dict):
        listed = listed.get("Files", listed.get("files"))
    if not isinstance(listed, list):
        raise ListingError("an object without a file list")
    if len(listed) > MAX_FILES:
        raise ListingError(f"a list of {len(listed):,} files")
    files: list[Remote] = []
    seen: set[str] = set()
    for item in listed:
        remote = _remote(item)
        if remote is not None and remote.name not in seen:
            seen.add(remote.name)
            files.append(remote)
    return files


def _remote(item: Any) -> Remote | None:
    if not isinstance(item, dict):
        raise ListingError("a file entry that is not an object")
    if (item.get("Type") or item.get("type") or "blob") == "tree":
        return None
    path = item.get("Path") or item.get("path") or item.get("Name")
    if not isinstance(path, str) or not path:
        raise ListingError("a file entry without a path")
    if _unsafe(path):
        raise ListingError(f"a file path that leaves the folder: {path[:80]!r}")
    size = item.get("Size", item.get("size"))
    if size is not None and (type(size) is not int or size < 0):
        raise ListingError(f"a size that is not a byte count for {path[:80]!r}")
    sha = item.get("Sha256") or item.get("sha256")
    sha256 = sha.lower() if isinstance(sha, str) and _SHA256.fullmatch(sha) else None
    return Remote(path, size, None, sha256)


def _unsafe(path: str) -> bool:
    parts = path.replace("\\", "/").split("/")
    return (
        path.startswith(("/", "\\"))
        or ".." in parts
        or "\0" in path
        or any(not p.isprintable() for p in parts)
        or (len(parts[0]) >= 2 and parts[0][1] == ":")  # C:\... on Windows
    )


def _message(data: dict[str, Any]) -> str:
    for key in ("Message", "message", "msg", "Msg"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().splitlines()[0][:200]
    return f"code {str(data.get('Code'))[:40]}"
