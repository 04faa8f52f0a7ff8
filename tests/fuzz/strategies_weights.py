"""Fuzzing the choice of weight files: a model folder's index file (`weight_map`) and the
tensor names of its safetensors headers, both anyone's bytes.

`check_weight_index(data)` writes `data` as `model.safetensors.index.json` beside two shards
and runs `weightfiles.select`: it must return (never raise), in under `LIMIT_S`, load only
files the folder holds, and keep every file it does not load in `ignored` with a reason.
`check_quantized_header(data)` reads `data` as a safetensors header of an AWQ checkpoint
and counts its logical parameters: an int within the bounds, or a reason.
"""

from __future__ import annotations

import json
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hypothesis import strategies as st

from vllm_console.core.catalog.readers.numbers import MAX_PARAMS
from vllm_console.core.catalog.readers.safetensors import params_from_safetensors
from vllm_console.core.catalog.readers.weightfiles import INDEX_NAME, select

LIMIT_S = 1.0
SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")


def check_weight_index(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in SHARDS:
            (Path(tmp) / name).write_bytes(b"")
        (Path(tmp) / INDEX_NAME).write_bytes(data)
        top = [*SHARDS, INDEX_NAME, "extra.bin"]
        start = time.perf_counter()
        picked = select(tmp, top)
        assert time.perf_counter() - start < LIMIT_S
    assert set(picked.loaded) <= set(SHARDS)
    assert {n for n, _ in picked.ignored} | set(picked.loaded) == {*SHARDS, "extra.bin"}
    assert all(why for _, why in picked.ignored)
    assert picked.index_total is None or 0 < picked.index_total <= MAX_PARAMS


def check_quantized_header(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / SHARDS[0]).write_bytes(struct.pack("<Q", len(data)) + data)
        start = time.perf_counter()
        result = params_from_safetensors(tmp, [SHARDS[0]], "AWQ 4-bit")
        assert time.perf_counter() - start < LIMIT_S
    if result.params is None:
        assert result.problems
    else:
        assert 0 <= result.params <= MAX_PARAMS


_names = st.one_of(st.sampled_from([*SHARDS, "extra.bin", "", "../x", "a/b"]), st.text(max_size=20))
_values = st.one_of(_names, st.integers(), st.none(), st.lists(st.integers(), max_size=3))
generated_indexes = st.builds(
    lambda wm, meta: json.dumps({"weight_map": wm, "metadata": meta}).encode(),
    st.one_of(st.dictionaries(st.text(max_size=10), _values, max_size=8), _values),
    st.one_of(st.none(), st.fixed_dictionaries({"total_parameters": _values})),
)
_seed_index = json.dumps({"metadata": {"total_parameters": 10}, "weight_map": {"a": SHARDS[0]}})
mutated_indexes = st.builds(
    lambda at, junk: (_seed_index[:at] + junk + _seed_index[at:]).encode(),
    st.integers(0, len(_seed_index)),
    st.text(max_size=8),
)

_suffixes = st.sampled_from([".qweight", ".qzeros", ".scales", "_blocks", ".weight", ".g_idx", ""])
_tensor = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["I32", "U8", "F16", "BF16", "x"]),
        "shape": st.lists(st.integers(0, 2**40), max_size=4),
    }
)
generated_headers = st.dictionaries(
    st.builds(lambda a, b: a + b, st.text(max_size=12), _suffixes), _tensor, max_size=10
).map(lambda h: json.dumps(h).encode())
_seed_header = json.dumps({"l.qweight": {"dtype": "I32", "shape": [4096, 512]}})
mutated_headers = st.builds(
    lambda at, junk: (_seed_header[:at] + junk + _seed_header[at:]).encode(),
    st.integers(0, len(_seed_header)),
    st.text(max_size=8),
)

# parser name -> (its check, generated inputs, mutated inputs), for bench/fuzz_campaign.py
Fuzzed = tuple[Callable[[bytes], None], st.SearchStrategy[bytes], st.SearchStrategy[bytes]]
PARSERS: dict[str, Fuzzed] = {
    "weight_index": (check_weight_index, generated_indexes, mutated_indexes),
    "quantized_header": (check_quantized_header, generated_headers, mutated_headers),
}
