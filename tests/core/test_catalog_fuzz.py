"""Property tests of the catalog's parsers of untrusted bytes (the checks and strategies are
in `tests.fuzz.strategies_catalog`, shared with bench/fuzz_campaign.py).

Each parser gets generated inputs and mutations of a valid file; each must return a value or
a reason, never raise, and finish within a second. The fast suite runs a few dozen examples
per property; the campaign runs many more.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fuzz import strategies_catalog as fuzz

from vllm_console.core.catalog import index as catalog_index
from vllm_console.core.catalog import records
from vllm_console.core.catalog.readers.config import load_json
from vllm_console.core.catalog.readers.gguf import read_gguf
from vllm_console.core.catalog.readers.safetensors import read_safetensors_header

FAST = settings(
    max_examples=40,
    deadline=None,  # the checks time each input themselves (LIMIT_S)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FAST
@given(fuzz.generated_configs)
def test_config_json_generated(data: bytes) -> None:
    fuzz.check_config_json(data)


@FAST
@given(fuzz.mutated_configs)
def test_config_json_mutated(data: bytes) -> None:
    fuzz.check_config_json(data)


@FAST
@given(fuzz.generated_safetensors)
def test_safetensors_header_generated(data: bytes) -> None:
    fuzz.check_safetensors_header(data)


@FAST
@given(fuzz.mutated_safetensors)
def test_safetensors_header_mutated(data: bytes) -> None:
    fuzz.check_safetensors_header(data)


@FAST
@given(fuzz.generated_ggufs)
def test_gguf_header_generated(data: bytes) -> None:
    fuzz.check_gguf_header(data)


@FAST
@given(fuzz.mutated_ggufs)
def test_gguf_header_mutated(data: bytes) -> None:
    fuzz.check_gguf_header(data)


@FAST
@given(fuzz.generated_indexes)
def test_index_file_generated(data: bytes) -> None:
    fuzz.check_index_file(data)


@FAST
@given(fuzz.mutated_indexes)
def test_index_file_mutated(data: bytes) -> None:
    fuzz.check_index_file(data)


def test_seeds_are_valid(tmp_path: Path) -> None:
    """The mutations start from files each reader accepts, so they probe past the first byte."""
    for i, seed in enumerate(fuzz.config_seeds()):
        (tmp_path / f"c{i}.json").write_bytes(seed)
        assert load_json(str(tmp_path / f"c{i}.json"))[0]
    for i, seed in enumerate(fuzz.safetensors_seeds()):
        (tmp_path / f"w{i}.safetensors").write_bytes(seed)
        assert read_safetensors_header(str(tmp_path / f"w{i}.safetensors"))[0]
    for i, seed in enumerate(fuzz.gguf_seeds()):
        (tmp_path / f"g{i}.gguf").write_bytes(seed)
        assert read_gguf(str(tmp_path / f"g{i}.gguf"))[0]
    (tmp_path / "index").write_bytes(fuzz.index_seed())
    records = catalog_index.load_records(tmp_path / "index")
    assert records and len(records) == 3 and all(map(catalog_index.usable, records.values()))


_NAME_CHARS = st.sampled_from(["a", ".", "/", "\x00", "é", " ", "-"])
_names = st.lists(st.text(_NAME_CHARS, max_size=8), max_size=6).map(tuple)


@FAST
@given(_names)
def test_relative_names_check_agrees_with_a_name_by_name_reading(names: tuple[str, ...]) -> None:
    """`are_relative` joins the names and searches them once; read one name at a time, a
    name is relative when it is not empty, does not start with "/", holds no NUL and has no
    ".." part."""

    def relative(name: str) -> bool:
        return bool(name) and name[0] != "/" and "\0" not in name and ".." not in name.split("/")

    assert records.are_relative(names) == all(map(relative, names))


_plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(st.sampled_from("ab."), max_size=3),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(st.sampled_from("ab"), max_size=2), inner, max_size=4)
    ),
    max_leaves=20,
)


@FAST
@given(_plain)
def test_saved_index_data_is_unchanged_by_sharing_its_strings(value: object) -> None:
    """The index writes equal strings once; what it writes reads back equal, of the same
    types, and a string that occurs twice is one object."""
    import pickle

    shared = records.shared_strings(value)
    assert shared == value and repr(shared) == repr(value)
    back = pickle.loads(pickle.dumps(shared, protocol=5))
    assert back == value and repr(back) == repr(value)
    strings: dict[str, int] = {}

    def ids(item: object) -> None:
        if type(item) is str:
            assert strings.setdefault(item, id(item)) == id(item)
        elif isinstance(item, list | tuple):
            for x in item:
                ids(x)
        elif isinstance(item, dict):
            for k, v in item.items():
                ids(k)
                ids(v)

    ids(shared)
