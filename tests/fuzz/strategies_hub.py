"""Fuzzing the reader of ModelScope's file listing (`core.hub.ms_listing.parse_listing`): its
bytes come from a server, or from whatever answers in its place (a captive portal, a proxy).

Inputs are listings in the site's shape with every field bent (sizes as strings, floats,
booleans, negatives, 2**70; paths absolute, with `..`, control characters, empty; entries that
are not objects; `Data` as a list or an object, `Success` false), JSON of any shape, and raw
bytes. `check_listing` holds the reader to: a list of files or a `ListingError`, nothing
else, within `LIMIT`; every file it gives has a relative path inside the folder, a size that
is None or a whole count of bytes, a sha256 that is None or 64 hex digits; no path twice.
`PARSERS` is read by bench/fuzz_campaign.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from vllm_console.core.hub.ms_listing import ListingError, parse_listing

LIMIT = 1.0  # seconds per input

_odd = st.sampled_from(
    ["", "/etc/passwd", "../x", "a/../../b", "a\x00b", "a\x1b[31m", "C:\\x", "\\\\srv\\x", "é"]
)
_paths = st.one_of(_odd, st.text(max_size=30), st.from_regex(r"[a-z]{1,8}(/[a-z.]{1,8}){0,3}"))
_sizes = st.one_of(
    st.none(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=5),
)
_shas = st.one_of(
    st.none(), st.text(max_size=70), st.from_regex(r"[0-9a-fA-F]{64}", fullmatch=True)
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def _entry(draw: st.DrawFn) -> Any:
    entry = {
        "Path": draw(_paths),
        "Type": draw(st.sampled_from(["blob", "tree", None, 3])),
        "Size": draw(_sizes),
        "Sha256": draw(_shas),
    }
    keep = draw(st.sets(st.sampled_from(sorted(entry)), min_size=1))
    return {k: v for k, v in entry.items() if k in keep} if draw(st.booleans()) else entry


@st.composite
def listings(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["site", "bare", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(_json)).encode()
    entries = draw(st.lists(st.one_of(_entry(), _json), max_size=8))
    data: Any = {"Files": entries} if kind == "site" else entries
    body = {"Code": draw(st.sampled_from([200, "200", 404, None])), "Data": data}
    if draw(st.booleans()):
        body["Success"] = draw(st.booleans())
    return json.dumps(body).encode()


def check_listing(body: bytes) -> None:
    started = time.monotonic()
    try:
        files = parse_listing(body)
    except ListingError as exc:
        assert str(exc) and "\n" not in str(exc)
        files = []
    assert time.monotonic() - started < LIMIT
    names = [f.name for f in files]
    assert len(names) == len(set(names))
    for f in files:
        parts = f.name.replace("\\", "/").split("/")
        assert f.name and not f.name.startswith(("/", "\\")) and ".." not in parts
        assert all(p.isprintable() for p in parts)
        assert f.size is None or (type(f.size) is int and f.size >= 0)
        assert f.lfs_sha256 is None or len(f.lfs_sha256) == 64


PARSERS: dict[str, tuple[Callable[[Any], None], st.SearchStrategy[Any]]] = {
    "ms_listing": (check_listing, listings()),
}
