"""bench/bench_catalog.py still runs (on 20 repos; no timing is asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_catalog.py"


def test_bench_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_catalog", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--repos", "20", "--runs", "1", "--dir", str(tmp_path / "hub")]) == 0
    out = capsys.readouterr().out
    assert "first list" in out and "complete scan" in out and "scan_cache_dir" in out
