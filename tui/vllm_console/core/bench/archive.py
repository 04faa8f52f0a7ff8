"""Benchmarks in the run archive, beside the launches: one folder each, `bench.json` in it.

The folder sits in the archive's `runs/` (named `STAMP-bench-MODEL`), private like a
launch's; the launch archive skips it (it has no run.json) and `vllm-console runs` lists both.
A record is read without trust: at most RECORD_LIMIT bytes, the figures of each step checked
(`stats.step_from_json`); a damaged one is skipped.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllm_console.core.bench.arrivals import INF, describe_rate, rate_from_json
from vllm_console.core.bench.stats import StepResult, step_from_json
from vllm_console.core.bench.sweep import BenchRecord, with_id
from vllm_console.core.files import private_dir, read_capped, write_private

RECORD = "bench.json"
RECORD_LIMIT = 4 << 20
LATEST_TIME = 2.0**33


@dataclass(frozen=True)
class SavedBench:
    """A benchmark as read back: enough to list, compare and plot it."""

    id: str
    dir: Path
    started: float
    status: str
    model: str | None
    source: str | None
    server_version: str | None
    steps: tuple[StepResult, ...]
    findings: tuple[str, ...]
    data: dict[str, Any]

    def summary(self) -> str:
        levels = ",".join(str(s.concurrency) for s in self.steps) or "-"
        best = max((s.output_throughput for s in self.steps), default=0.0)
        return (
            f"{self.status}  bench {self.model or '?'}  concurrency {levels}{self.pacing()}  "
            f"best {best:.1f} output tok/s  ({self.source or '-'})"
        )

    def pacing(self) -> str:
        """How the requests were paced (' at 4 req/s (evenly)'); nothing when all at once."""
        config = self.data.get("config")
        if not isinstance(config, dict):
            return ""
        rate = rate_from_json(config.get("request_rate"), INF)
        return "" if math.isinf(rate) else " at " + describe_rate(
            rate, rate_from_json(config.get("burstiness"), 1.0)
        )  # fmt: skip


def save(root: Path, record: BenchRecord) -> BenchRecord:
    """Write the record into a new folder under `root` (the runs folder); it with its id."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", (record.model or "endpoint").rsplit("/", 1)[-1])
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(record.started))
    private_dir(root, owned=root.parent)
    folder = root / f"{stamp}-bench-{slug[:40]}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = root / f"{stamp}-bench-{slug[:40]}-{suffix}"
    folder.mkdir(mode=0o700)
    os.chmod(folder, 0o700)
    saved = with_id(record, folder.name)
    write_private(folder / RECORD, json.dumps(saved.to_json(), indent=2))
    return saved


def parse_saved(folder: Path, raw: bytes) -> SavedBench | None:
    """The benchmark recorded in `raw`, or None when the record is damaged."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("kind") != "bench":
            return None
        steps = data.get("steps")
        findings = data.get("findings", [])
        started = data.get("started")
        if not isinstance(steps, list) or not isinstance(findings, list):
            return None
        if isinstance(started, bool) or not isinstance(started, int | float):
            return None
        if not 0 <= started <= LATEST_TIME:
            return None
        return SavedBench(
            id=folder.name,
            dir=folder,
            started=float(started),
            status=_text(data.get("status")) or "?",
            model=_text(data.get("model")),
            source=_text(data.get("source")),
            server_version=_text(data.get("server_version")),
            steps=tuple(step_from_json(_obj(s)) for s in steps),
            findings=tuple(f for f in findings if isinstance(f, str)),
            data=data,
        )
    except (ValueError, TypeError, KeyError, RecursionError):
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _obj(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("an object expected")
    return value


def all_benches(root: Path) -> list[SavedBench]:
    """Newest first; damaged records skipped."""
    found: list[SavedBench] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name, reverse=True)
    except OSError:
        return []
    for entry in entries:
        if "-bench-" not in entry.name:
            continue
        try:
            raw = read_capped(Path(entry.path, RECORD), RECORD_LIMIT)
        except OSError:
            continue
        if (saved := parse_saved(Path(entry.path), raw)) is not None:
            found.append(saved)
    return found
