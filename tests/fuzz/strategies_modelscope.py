"""Fuzzing the readers of the ModelScope cache: its marker files and its folder names.

`.mdl` is a pickle someone else's program wrote: the strategies start from the SDK's own
(`{"id": "ORG/NAME"}` in every protocol), mutate its bytes, and mix in pickles that would run
code or build objects if loaded by the stock unpickler (`os.system`, `eval`, a class) or make
it allocate gigabytes (a memo index of 2**31, a string length far past the data). Each
`check_<parser>` raises AssertionError when the parser raises, takes over LIMIT seconds, runs
anything, or returns what a screen could not show. Folder names are any text, `--` and `___`
sprinkled in, as path components (`catalog.mscache`).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from vllm_console.core.catalog import mscache, msmodel

LIMIT = 1.0  # seconds per input
RAN: list[str] = []  # what a loaded pickle managed to call: must stay empty


def _record(*args: object) -> None:
    RAN.append(repr(args))


SEEDS = [
    pickle.dumps({"id": ident}, protocol=p)
    for ident in ("Qwen/Qwen2___5-7B-Instruct", "damo/nlp_bert", "a/b")
    for p in range(pickle.HIGHEST_PROTOCOL + 1)
]
HOSTILE = [
    b"cos\nsystem\n(S'echo pwned'\ntR.",
    b"cbuiltins\neval\n(S'1+1'\ntR.",
    pickle.dumps({"id": "x/y", "obj": _record}),
    b"\x80\x05\x95" + b"\xff" * 8,
    b"(" * 100_000 + b".",
    b"\x80\x02}r\xff\xff\xff\x7fX\x02\x00\x00\x00idX\x03\x00\x00\x00a/bs.",  # memo index 2**31
    b"\x80\x02}X\x02\x00\x00\x00idX\xff\xff\xff\x7fa/bs.",  # a 2 GiB string, 3 bytes given
    b"]" + b"(" * 5000 + b"l" * 5000 + b".",
]


@st.composite
def mdl_files(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS + HOSTILE)))
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["drop", "insert", "flip"]))
        if kind == "drop":
            del data[where : where + draw(st.integers(1, 8))]
        elif kind == "insert":
            data[where:where] = draw(st.binary(max_size=16))
        elif data:
            data[where % len(data)] ^= draw(st.integers(1, 255))
    return bytes(data)


def mv_files() -> st.SearchStrategy[bytes]:
    seeds = [b"Revision:master,CreatedAt:1700000000", b"v1.0.2", b"Revision:,CreatedAt:"]
    return st.one_of(
        st.sampled_from(seeds),
        st.binary(max_size=300),
        st.builds(lambda a, b: a + b, st.sampled_from(seeds), st.binary(max_size=40)),
    )


def names() -> st.SearchStrategy[str]:
    parts = st.sampled_from(["--", "___", ".", "/", "", "snapshots", "master", "\x00", "é"])
    return st.lists(st.one_of(parts, st.text(max_size=8)), max_size=8).map("".join)


def _timed(fn: Callable[[], object]) -> object:
    start = time.perf_counter()
    out = fn()
    assert time.perf_counter() - start < LIMIT
    return out


def check_parse_mdl(data: bytes) -> None:
    found = _timed(lambda: msmodel.parse_mdl(data))
    assert RAN == [], RAN
    if found is not None:
        assert isinstance(found, str) and found.isprintable() and found.count("/") == 1
        assert "___" not in found and len(found) <= 256


def check_parse_mv(data: bytes) -> None:
    found = _timed(lambda: msmodel.parse_mv(data))
    if found is not None:
        assert isinstance(found, str) and found.isprintable() and found == found.strip()
        assert 0 < len(found) <= msmodel.MAX_REVISION


def check_folder_names(name: str) -> None:
    found = mscache.repo_id(name)
    if found is not None:
        org, _, rest = found.partition("/")
        assert org and rest and name == f"{org}--{rest}"
    if "/" not in name and name:
        assert "___" not in mscache.model_id("org", name)
    path = f"/root/{name}/snapshots/master"
    assert isinstance(mscache.is_repo_snapshot(path), bool)
    if name.count("/") == 0 and name:
        assert mscache.temp_folder(f"/root/org/{name}") == f"/root/{mscache.TEMP}/org/{name}"


CHECKS: dict[str, tuple[Callable[[Any], None], Callable[[], st.SearchStrategy[Any]]]] = {
    "modelscope.parse_mdl": (check_parse_mdl, mdl_files),
    "modelscope.parse_mv": (check_parse_mv, mv_files),
    "modelscope.folder_names": (check_folder_names, names),
}
PARSERS: dict[str, tuple[Callable[[Any], None], st.SearchStrategy[Any]]] = {
    name: (check, strategy()) for name, (check, strategy) in CHECKS.items()
}
