"""Fuzzing the catalog's parsers of untrusted bytes: config.json, safetensors headers, GGUF
headers and the catalog index file.

For each parser: a strategy of generated inputs (built from scratch, leaning on the values
that broke things: huge numbers, NaN, deep nesting), a strategy of mutated inputs (a valid
file the tests already build, with bytes flipped, inserted, deleted, truncated or overwritten
with extreme numbers), and `check_<parser>(data)`, which runs the catalog's own reader on
the bytes written to a real file and raises AssertionError if it raised, took more than
`LIMIT_S`, or returned something out of bounds. `bench/fuzz_campaign.py` runs the same checks
for longer.
"""

from __future__ import annotations

import functools
import json
import pickle
import pickletools
import struct
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hypothesis import strategies as st

from tests.fakes.cachegen import (
    GEMMA3_4B_MULTIMODAL,
    LLAMA31_8B_FP8,
    QWEN25_7B,
    QWEN25_7B_AWQ,
    Typed,
    gguf_bytes,
    llama_gguf_metadata,
    llama_gguf_tensors,
    llama_tensors,
    safetensors_bytes,
)
from vllm_console.core.catalog import index as catalog_index
from vllm_console.core.catalog.describe import describe_gguf
from vllm_console.core.catalog.entry import format_bytes, format_params, format_tokens
from vllm_console.core.catalog.meta import ModelMeta
from vllm_console.core.catalog.readers import numbers
from vllm_console.core.catalog.readers import safetensors as weights
from vllm_console.core.catalog.readers.config import config_meta, load_json
from vllm_console.core.catalog.readers.gguf import read_gguf

LIMIT_S = 1.0
EXTREME_INTS = (0, 1, -1, 2**31, 2**32 - 1, 2**62, 2**63 - 1, 2**64 - 1, 10**400)
_U64 = (0, 1, 2**32, 2**40 + 1, 2**62, 2**63, 2**64 - 1)

# --- running a reader on bytes ------------------------------------------------------------


@functools.cache
def _scratch() -> Path:
    """One folder per process for the files the checks write (removed at exit)."""
    folder = tempfile.TemporaryDirectory(prefix="fuzz-catalog-")
    _KEEP.append(folder)
    return Path(folder.name)


_KEEP: list[tempfile.TemporaryDirectory[str]] = []


def _file(name: str, data: bytes) -> str:
    path = _scratch() / name
    path.write_bytes(data)
    return str(path)


@contextmanager
def _verdict(what: str, data: bytes) -> Iterator[None]:
    """Any exception is a violation, and so is taking more than LIMIT_S."""
    start = time.perf_counter()
    try:
        yield
    except AssertionError:
        raise
    except BaseException as exc:
        raise AssertionError(f"{what} raised {exc!r} on {data[:200]!r}") from exc
    elapsed = time.perf_counter() - start
    assert elapsed < LIMIT_S, f"{what} took {elapsed:.2f} s on {data[:200]!r}"


def _check_meta(meta: ModelMeta) -> None:
    bounds = {
        "params": numbers.MAX_PARAMS,
        "context_length": numbers.MAX_CONTEXT,
        "num_layers": numbers.MAX_COUNT,
        "num_kv_heads": numbers.MAX_COUNT,
        "head_dim": numbers.MAX_DIM,
    }
    for name, bound in bounds.items():
        value = getattr(meta, name)
        assert value is None or 0 < value <= bound, f"{name} = {numbers.rough(value)}"
    for text in (format_params(meta.params), format_tokens(meta.context_length)):
        assert len(text) < 20, text


def _check_answer(value: object, why: str | None) -> None:
    assert (value is None) != (why is None), (value, why)
    assert why is None or (isinstance(why, str) and len(why) < 1000), why


# --- the checks ----------------------------------------------------------------------------


def check_config_json(data: bytes) -> None:
    """config.json: `load_json` then `config_meta`, as the catalog reads a model folder."""
    with _verdict("config.json", data):
        config, why = load_json(_file("config.json", data))
        _check_answer(config, why)
        if config is not None:
            meta, problems = config_meta(config)
            _check_meta(meta)
            assert all(isinstance(p, str) and len(p) < 200 for p in problems), problems


def check_safetensors_header(data: bytes) -> None:
    """A safetensors file: its header read and summed (the memo cleared: a fresh read)."""
    with _verdict("safetensors", data):
        weights.clear_memo()
        header, why = weights.read_safetensors_header(_file("model.safetensors", data))
        _check_answer(header, why)
        if header is not None:
            assert 0 <= header.params <= numbers.MAX_PARAMS
            format_params(header.params)


def check_gguf_header(data: bytes) -> None:
    """A GGUF file: its header parsed, then described as the catalog lists it."""
    with _verdict("GGUF", data):
        path = _file("model.gguf", data)
        info, why = read_gguf(path)
        _check_answer(info, why)
        described = describe_gguf("fuzz", [path])
        _check_meta(described.meta)
        format_bytes(len(data))


def _sparse_memo_put(body: bytes) -> bool:
    """Whether the pickle stores to a memo slot far past its own length, before any opcode
    that would stop it. CPython's C unpickler (before gh-115952) grows its memo array to
    twice that slot at once: a 10-byte pickle can ask for 32 GiB. The catalog's writer never
    puts to a slot by number (protocol 5 memoizes in order), and only this user's own account
    can write the file and make its CRC right, so the index accepts this one risk; the fuzz
    run does not feed it such files (it would only measure the machine's swap)."""
    try:
        for op, arg, _ in pickletools.genops(body):
            slot = arg if op.name in ("PUT", "BINPUT", "LONG_BINPUT") else None
            if isinstance(slot, int) and slot > 2 * len(body) + 256:
                return True
    except Exception:  # the unpickler stops at the same opcode
        return False
    return False


def check_index_file(data: bytes) -> None:
    """The catalog index: loaded, then every record checked as a scan would before use."""
    if _sparse_memo_put(data[len(catalog_index.MAGIC) + 4 :]):
        return
    with _verdict("catalog index", data):
        path = Path(_file(catalog_index.INDEX_NAME, data))
        records = catalog_index.load_records(path)
        assert records is None or isinstance(records, dict)
        for record in (records or {}).values():
            catalog_index.usable(record)
        catalog_index.CatalogIndex.load(path)


# --- generated inputs ----------------------------------------------------------------------

_numbers = st.one_of(
    st.sampled_from(EXTREME_INTS),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**500), max_value=10**500),
)
_CONFIG_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "seq_length",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_size",
    "head_dim",
    "torch_dtype",
    "architectures",
    "model_type",
)
_json_scalars = st.one_of(st.none(), st.booleans(), _numbers, st.text(max_size=20))
_json = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(_CONFIG_KEYS) | st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=30,
)
_rope = st.fixed_dictionaries(
    {"type": st.sampled_from(["yarn", "linear", "dynamic", "llama3", "x"]), "factor": _numbers},
    optional={"original_max_position_embeddings": _numbers},
)


@st.composite
def _config_dict(draw: st.DrawFn) -> dict[str, object]:
    config: dict[str, object] = draw(st.dictionaries(st.sampled_from(_CONFIG_KEYS), _json))
    if draw(st.booleans()):
        config["rope_scaling"] = draw(_rope)
    if draw(st.booleans()):
        method = draw(st.sampled_from(["awq", "gptq", "compressed-tensors", "x"]))
        config["quantization_config"] = {"quant_method": method, "bits": draw(_numbers)}
    if draw(st.booleans()):
        config["text_config"] = draw(st.dictionaries(st.sampled_from(_CONFIG_KEYS), _json))
    return config


def _dumps(value: object) -> bytes:
    try:
        return json.dumps(value).encode()
    except ValueError:  # an int past the 4,300-digit limit: written by hand below
        return b"{}"


def _deep_json(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


generated_configs = st.one_of(
    _config_dict().map(_dumps),
    st.integers(1, 100_000).map(_deep_json),
    st.integers(4000, 6000).map(lambda n: b'{"max_position_embeddings": 1' + b"0" * n + b"}"),
    st.binary(max_size=64),
)


def _header(tensors: dict[str, object]) -> bytes:
    raw = _dumps(tensors)
    return struct.pack("<Q", len(raw)) + raw


_shapes = st.lists(st.one_of(st.sampled_from(EXTREME_INTS), st.integers(0, 4096)), max_size=24)
_tensor = st.fixed_dictionaries(
    {"dtype": st.sampled_from(["BF16", "F32", "I8", "?" * 40]), "shape": _shapes},
    optional={"data_offsets": st.lists(_numbers, max_size=2)},
)
generated_safetensors = st.one_of(
    st.dictionaries(st.text(max_size=12), _tensor | _json, max_size=6).map(_header),
    st.integers(4400, 6000).map(
        lambda n: _header_text('{"w": {"dtype": "F32", "shape": [1' + "1" * n + "]}}")
    ),
    st.sampled_from(_U64).map(lambda n: struct.pack("<Q", n) + b"{}"),
    st.binary(max_size=64),
)


def _header_text(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _nested_gguf(depth: int, count: int) -> bytes:
    body = struct.pack("<IQ", 4, 0)
    for _ in range(depth - 1):
        body = struct.pack("<IQ", 9, count) + body
    key = struct.pack("<Q", 1) + b"x" + struct.pack("<I", 9)
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + key + body


_gguf_value = st.one_of(
    st.integers(0, 2**32 - 1),
    st.sampled_from(_U64).map(lambda n: Typed(10, n)),
    st.text(max_size=16),
    st.lists(st.integers(0, 2**32 - 1), max_size=4),
)
_gguf_tensor = st.tuples(
    st.text(min_size=1, max_size=8),
    st.lists(st.sampled_from(_U64) | st.integers(0, 4096), max_size=9),
    st.integers(0, 40),
)
generated_ggufs = st.one_of(
    st.builds(
        gguf_bytes,
        st.dictionaries(
            st.sampled_from(
                [
                    "general.architecture",
                    "llama.context_length",
                    "llama.block_count",
                    "llama.embedding_length",
                    "llama.attention.head_count",
                    "general.file_type",
                ]
            )
            | st.text(min_size=1, max_size=8),
            _gguf_value,
            max_size=6,
        ),
        st.lists(_gguf_tensor, max_size=4),
        st.sampled_from([1, 2, 3]),
    ),
    st.builds(_nested_gguf, st.integers(1, 20_000), st.sampled_from([1, 2, 2**40])),
    st.binary(max_size=64).map(lambda raw: b"GGUF" + raw),
)


def _index_bytes(payload: object) -> bytes:
    data = pickle.dumps(payload, protocol=5)
    return catalog_index.MAGIC + zlib.crc32(data).to_bytes(4, "little") + data


_plain = st.recursive(
    st.one_of(st.none(), st.booleans(), _numbers, st.text(max_size=8), st.binary(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=7).map(tuple),
        st.frozensets(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=4), inner, max_size=4),
    ),
    max_leaves=40,
)
_record = st.one_of(
    st.tuples(st.just("files"), _plain, _plain),
    st.tuples(st.just("repo"), _plain, _plain, _plain, _plain),
    _plain,
)
generated_indexes = st.one_of(
    st.dictionaries(st.text(max_size=8), _record, max_size=4).map(
        lambda records: _index_bytes({"version": catalog_index.VERSION, "records": records})
    ),
    _plain.map(_index_bytes),
    st.binary(max_size=64).map(lambda raw: catalog_index.MAGIC + raw),
)

# --- mutated inputs ------------------------------------------------------------------------

_OPS = ("flip", "insert", "delete", "truncate", "number", "duplicate")


@st.composite
def _mutation(draw: st.DrawFn, seeds: Sequence[bytes]) -> bytes:
    """A seed with 1 to 8 edits: bits flipped, bytes inserted or deleted, the end cut off,
    an extreme 8-byte number written over some bytes, a stretch repeated."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(_OPS))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[pos:]
        elif op == "number":
            data[pos : pos + 8] = struct.pack("<Q", draw(st.sampled_from(_U64)))
        elif op == "duplicate":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 256))]
    return bytes(data)


def _with_crc(raw: bytes) -> bytes:
    """An index file whose payload was edited and its CRC made right again, so the edits
    reach the unpickler instead of stopping at the checksum."""
    head = len(catalog_index.MAGIC) + 4
    if len(raw) < head:
        return raw
    body = raw[head:]
    return catalog_index.MAGIC + zlib.crc32(body).to_bytes(4, "little") + body


@functools.cache
def config_seeds() -> tuple[bytes, ...]:
    configs = (QWEN25_7B, QWEN25_7B_AWQ, LLAMA31_8B_FP8, GEMMA3_4B_MULTIMODAL)
    return tuple(json.dumps(c).encode() for c in configs)


@functools.cache
def safetensors_seeds() -> tuple[bytes, ...]:
    return (
        safetensors_bytes(llama_tensors(), {"format": "pt"}, with_data=False),
        safetensors_bytes(llama_tensors(layers=1, dtype="F32"), with_data=False),
    )


@functools.cache
def gguf_seeds() -> tuple[bytes, ...]:
    metadata = {**llama_gguf_metadata(), "x.nested": [[1, 2], [3]]}
    return (
        gguf_bytes(metadata, llama_gguf_tensors()),
        gguf_bytes(llama_gguf_metadata(), llama_gguf_tensors(), version=2),
    )


@functools.cache
def index_seed() -> bytes:
    """A real index file: a complete scan of a small cache and model folder, with the stamps
    trusted however new (the files were written just now)."""
    from tests.fakes.cachegen import FakeRevision, commit_hash, write_cache_repo, write_model_dir
    from vllm_console.core.catalog import hfcache
    from vllm_console.core.catalog import scan as catalog

    base = _scratch() / "index-seed"
    files = {"config.json": config_seeds()[0], "model.safetensors": safetensors_seeds()[0]}
    write_cache_repo(base / "hub", "Org/Repo", [FakeRevision(commit_hash("r"), files, ("main",))])
    write_model_dir(base / "models" / "Org--Folder")
    (base / "models" / "tiny.gguf").write_bytes(gguf_seeds()[0])
    racy, hfcache.RACY_NS = hfcache.RACY_NS, 0
    try:
        catalog.scan(base / "hub", [base / "models"], index_path=base / "index")
    finally:
        hfcache.RACY_NS = racy
    return (base / "index").read_bytes()


def mutated(seeds: Callable[[], Sequence[bytes]]) -> st.SearchStrategy[bytes]:
    """Mutations of the seeds `seeds()` returns (built when first drawn)."""
    return st.deferred(lambda: _mutation(seeds()))


mutated_configs = mutated(config_seeds)
mutated_safetensors = mutated(safetensors_seeds)
mutated_ggufs = mutated(gguf_seeds)
mutated_indexes = st.one_of(
    mutated(lambda: (index_seed(),)),
    mutated(lambda: (index_seed(),)).map(_with_crc),
)

# parser name -> (its check, generated inputs, mutated inputs), for bench/fuzz_campaign.py
Fuzzed = tuple[Callable[[bytes], None], st.SearchStrategy[bytes], st.SearchStrategy[bytes]]
PARSERS: dict[str, Fuzzed] = {
    "config_json": (check_config_json, generated_configs, mutated_configs),
    "safetensors_header": (check_safetensors_header, generated_safetensors, mutated_safetensors),
    "gguf_header": (check_gguf_header, generated_ggufs, mutated_ggufs),
    "index_file": (check_index_file, generated_indexes, mutated_indexes),
}
