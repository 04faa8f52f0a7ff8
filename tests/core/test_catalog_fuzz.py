"""Property tests of the catalog's parsers of untrusted bytes (the checks and strategies are
in `tests.fuzz.strategies_catalog`, shared with bench/fuzz_campaign.py).

Each parser gets generated inputs and mutations of a valid file; each must return a value or
a reason, never raise, and finish within a second. The fast suite runs a few dozen examples
per property; the campaign runs many more.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from tests.fuzz import strategies_catalog as fuzz

from vllm_console.core.catalog import index as catalog_index
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
