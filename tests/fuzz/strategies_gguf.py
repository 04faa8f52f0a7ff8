"""Fuzzing the parsing of GGUF file names and quantization ids (`catalog.ggufsets`).

File names come from disk (any bytes a folder may hold, decoded as the OS does) and ids from
users: `quant_sets`, `quant_ids`, `split_quant_id`, `find_set` and the readers' name helpers
must never raise, and what they return must hold together (every file in exactly one set,
ids unique, a split id joins back to the name). `bench/fuzz_campaign.py` runs the same checks
for longer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import strategies as st

from vllm_console.core.catalog.ggufsets import (
    find_set,
    is_gguf_name,
    quant_ids,
    quant_sets,
    split_quant_id,
)
from vllm_console.core.catalog.readers.gguf import gguf_stem, quant_from_name, shard_stem

LIMIT_S = 1.0
PIECES = ("Q4_K_M", "q8_0", "IQ2_XXS", "BF16", "f16", "-00001-of-00003", "-00002-of-00003",
          "-00003-of-00002", "00000", ".gguf", ".GGUF", "/", ":", "-", "_", ".", "..", "gguf",
          "model", "UD-Q4_K_XL", "\udcff", "\n", " ", "\x00")  # fmt: skip


def _texts() -> st.SearchStrategy[str]:
    pieces = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=6)), max_size=10)
    return st.one_of(pieces.map("".join), st.text(max_size=80))


def _names() -> st.SearchStrategy[list[str]]:
    folders = st.sampled_from(("", "A/", "B/", "A/B/"))
    return st.lists(st.tuples(folders, _texts()).map("".join), max_size=30)


def check_names(names: Sequence[str]) -> None:
    start = time.perf_counter()
    sets = quant_sets(names)
    ids = quant_ids("org/repo", sets)
    assert len(ids) == len(sets) and len(set(ids)) == len(ids), ids
    grouped = [f for s in sets for f in s.files]
    assert len(grouped) == len(set(grouped)) or len(names) != len(set(names))
    for s in sets:
        assert s.files and all(f in names and is_gguf_name(f) for f in s.files)
        assert s.quant is None or s.quant == s.quant.upper()
        assert find_set(sets, s.stem) is not None
        if s.quant and sum(o.quant == s.quant for o in sets) == 1:
            assert find_set(sets, s.quant.lower()) == s
    for name in names:
        base = name.rpartition("/")[2]
        shard = shard_stem(base)
        assert shard is None or (base.startswith(shard[0]) and min(shard[1:]) >= 0)
        gguf_stem(base)
    assert time.perf_counter() - start < LIMIT_S


def check_id(name: str) -> None:
    start = time.perf_counter()
    base, quant = split_quant_id(name)
    if quant is None:
        assert base == name
    else:
        assert f"{base}:{quant}" == name and ":" not in quant and "/" not in quant
    found = quant_from_name(name)
    assert found is None or found in name.upper()
    assert time.perf_counter() - start < LIMIT_S


# parser name -> (its check, its inputs), as bench/fuzz_campaign.py reads it
PARSERS: dict[str, tuple[Callable[[Any], None], st.SearchStrategy[Any]]] = {
    "gguf_names": (check_names, _names()),
    "quant_id": (check_id, _texts()),
}
