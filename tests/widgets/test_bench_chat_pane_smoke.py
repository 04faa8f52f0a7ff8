"""bench/bench_chat_pane.py still runs (a short, slow feed; no timing is asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_chat_pane.py"


def test_bench_runs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("bench_chat_pane", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look it up there
    spec.loader.exec_module(module)
    status = module.main(["--rate", "200", "--seconds", "0.25", "--runs", "1", "--paragraph", "10"])
    assert status in (0, 1)  # 1: a target missed on a busy machine; not this test's business
    out = capsys.readouterr().out
    assert "ChatPane" in out and "append/token" in out and "caught up" in out
