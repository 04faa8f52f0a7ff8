"""Benchmark: the model catalog against `huggingface_hub.scan_cache_dir()` on one cache.

    .venv/bin/python bench/bench_catalog.py [--repos 1000] [--dir PATH] [--runs 5]

Builds (or reuses, with --dir) a cache of N repos x 3 revisions x 20 tiny files, then prints,
side by side: the time to the first list of entries (names only), the complete scan (sizes
of every revision and blob, plus config.json and safetensors metadata of each entry's chosen
snapshot) the first time in a process and again as a rescan, and `scan_cache_dir()`.
Times are medians of warm runs (after one warm-up run that fills the OS page cache).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "tui", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

LIST_TARGET_S = 0.050
RATIO_TARGET = 20.0


def median_time(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ensure_cache(path: Path, repos: int) -> Path:
    from tests.fakes.cachegen import build_bench_cache

    marker = path / f".bench-{repos}-repos"
    if not marker.exists():
        print(f"building a cache of {repos} repos x 3 revisions x 20 files in {path} ...")
        start = time.perf_counter()
        build_bench_cache(path, repos)
        marker.write_text("built by bench/bench_catalog.py\n")
        print(f"built in {time.perf_counter() - start:.1f} s")
    return path


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def measure(cache: Path, runs: int) -> list[tuple[str, float, float, str, bool]]:
    """Rows of (measure, ours, scan_cache_dir, target, met)."""
    from huggingface_hub import scan_cache_dir

    from vllm_console.core import catalog, hfcache, weights

    def cold_scan() -> object:
        hfcache.clear_memo()
        weights.clear_memo()
        return catalog.scan(cache, [])

    first_list = median_time(lambda: catalog.list_models(cache, []), runs)
    cold = median_time(cold_scan, runs)
    warm = median_time(lambda: catalog.scan(cache, []), runs)
    theirs = median_time(lambda: scan_cache_dir(cache), max(1, min(runs, 3)))
    check_sizes(cache)
    return [
        (
            "first list (names, no sizes)",
            first_list,
            theirs,
            "<= 50 ms",
            first_list <= LIST_TARGET_S,
        ),
        ("complete scan, first in process", cold, theirs, ">= 20x", theirs / cold >= RATIO_TARGET),
        ("complete scan, rescan", warm, theirs, ">= 20x", theirs / warm >= RATIO_TARGET),
    ]


def check_sizes(cache: Path) -> None:
    """Our repo sizes must be scan_cache_dir's, or the timings mean nothing."""
    from huggingface_hub import scan_cache_dir

    from vllm_console.core import catalog

    theirs = {r.repo_id: r.size_on_disk for r in scan_cache_dir(cache).repos}
    ours = {e.id: e.size_bytes for e in catalog.scan(cache, []).entries}
    if ours != theirs:
        raise SystemExit("sizes differ from scan_cache_dir(): the benchmark is void")


def render(rows: Sequence[tuple[str, float, float, str, bool]]) -> str:
    header = ("measure", "ours", "scan_cache_dir", "ratio", "target", "met?")
    table = [header]
    for name, ours, theirs, target, met in rows:
        ratio = f"{theirs / ours:.1f}x" if ours else "-"
        table.append((name, _ms(ours), _ms(theirs), ratio, target, "yes" if met else "NO"))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--dir", type=Path, help="cache folder to build or reuse")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measure")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        cache = ensure_cache(args.dir or Path(tmp) / "hub", args.repos)
        rows = measure(cache, args.runs)
    print(f"{args.repos} repos x 3 revisions x 20 files; median of {args.runs} warm runs")
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
