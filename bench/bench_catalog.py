"""Benchmark: the model catalog against `huggingface_hub.scan_cache_dir()` on one cache.

    .venv/bin/python bench/bench_catalog.py [--repos 1000] [--ms-models N] [--dir PATH] [--runs 5]

Builds (or reuses, with --dir) a cache of N repos x 3 revisions x 20 tiny files, then prints,
each against `scan_cache_dir()` in the same run: the time to the first list of entries (names
only); the complete scan (repo sizes from the blobs, refs, the chosen snapshot's links,
config.json and safetensors metadata) without the on-disk index, memos cleared, and again as
a rescan; the complete scan as a fresh process does it with a warm on-disk index (loaded,
validated, refs read: in a new process, and in this one with its memos cleared); the first
scan that writes the index; and, for information, the exact walk of every revision of every
repo (what the details pane asks for one model at a time), memos cleared, and the floor of
any cold scan: its system calls alone, nothing built or checked (`bare_reads`).
Beside it, a ModelScope cache of as many models (20 files each, its SDK's layouts taking
turns): the first list of both caches together, and their complete scan with a warm index,
against both libraries' `scan_cache_dir()` summed (modelscope's, on the root and on `hub/`,
the two places its scan reads the layouts it knows).
Times are medians of warm runs (after one warm-up run that fills the OS page cache); the
measures take turns run by run, scan_cache_dir() included.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
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


class Timed(float):
    """Returned by a measured function that timed itself (the scan inside a child process)."""


def median_times(fns: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median time of each function; they take turns, run by run, so load drifts hit all."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            gc.collect()  # scan_cache_dir() leaves cyclic garbage: its collection is not ours
            start = time.perf_counter()
            got = fn()
            elapsed = time.perf_counter() - start
            times[name].append(float(got) if isinstance(got, Timed) else elapsed)
    return {name: statistics.median(t) for name, t in times.items()}


CHILD = """
import sys, time
from pathlib import Path
from vllm_console.core.catalog import scan as catalog
ms = Path(sys.argv[3]) if len(sys.argv) > 3 else None
start = time.perf_counter()
result = catalog.scan(Path(sys.argv[1]), [], index_path=Path(sys.argv[2]), ms_cache=ms)
print(time.perf_counter() - start, len(result.entries))
"""


def scan_in_child(cache: Path, index: Path, expected: int, ms: Path | None = None) -> Timed:
    """A new Python process's complete scan with the index, timed inside it (imports and
    interpreter start-up excluded, as they are for scan_cache_dir())."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tui"), str(ROOT)])}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(cache), str(index), *([str(ms)] if ms else [])],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, count = out.stdout.split()
    if int(count) != expected:
        raise SystemExit(f"the child process found {count} entries, not {expected}")
    return Timed(float(seconds))


def warm_index(cache: Path, index: Path, ms: Path | None = None) -> tuple[int, int]:
    """Write the index, waiting out the racy window of a cache built just now.

    Returns (entries the index holds, entries of the scan)."""
    from vllm_console.core.catalog import hfcache
    from vllm_console.core.catalog import index as catalog_index
    from vllm_console.core.catalog import scan as catalog

    total = 0
    for attempt in range(3):
        total = len(catalog.scan(cache, [], index_path=index, ms_cache=ms).entries)
        known = len(catalog_index.CatalogIndex.load(index))
        if known == total or attempt == 2:
            return known, total
        time.sleep(hfcache.RACY_NS / 1e9)  # folders changed less than 2 s ago are not trusted
    return 0, total


def bare_reads(cache: Path) -> int:
    """Only the system calls a cold complete scan cannot do without, in plain Python, with
    nothing built or checked: per repo `refs/main`, one lstat per blob (the size), the chosen
    snapshot's links, every ref file, config.json and the safetensors header. No
    implementation that reads these in Python can be faster: the floor of the cold scan."""
    total = 0
    with os.scandir(cache) as it:
        repos = [e.path for e in it if e.name.startswith("models--") and e.is_dir()]
    for repo in repos:
        fd = os.open(repo + "/refs/main", os.O_RDONLY)
        main = os.read(fd, 256).decode().strip()
        os.close(fd)
        with os.scandir(repo + "/blobs") as it:
            total += sum(e.stat(follow_symlinks=False).st_size for e in it)
        snapshot = f"{repo}/snapshots/{main}"
        dfd = os.open(snapshot, os.O_RDONLY | os.O_DIRECTORY)
        with os.scandir(dfd) as it:
            names = [e.name for e in it]
        total += sum(len(os.readlink(name, dir_fd=dfd)) for name in names)
        os.close(dfd)
        folders = [repo + "/refs"]
        while folders:
            with os.scandir(folders.pop()) as it:
                for e in it:
                    if e.is_dir():
                        folders.append(e.path)
                    else:
                        fd = os.open(e.path, os.O_RDONLY)
                        total += len(os.read(fd, 256))
                        os.close(fd)
        for name in ("config.json", "model.safetensors"):
            fd = os.open(f"{snapshot}/{name}", os.O_RDONLY)
            head = os.read(fd, 8) if name.endswith(".safetensors") else b""
            body = os.read(fd, int.from_bytes(head, "little") if head else 1 << 20)
            os.close(fd)
            total += len(json.loads(body))
    return total


def ensure_ms_cache(path: Path, models: int) -> Path:
    from tests.fakes.msgen import build_ms_bench_cache

    marker = path / f".bench-{models}-models"
    if not marker.exists():
        print(f"building a ModelScope cache of {models} models x 20 files in {path} ...")
        build_ms_bench_cache(path, models)
        marker.write_text("built by bench/bench_catalog.py\n")
    return path


def ms_scan_cache_dir(ms: Path) -> int:
    """modelscope's `scan_cache_dir()` of every layout it reads: the root and `hub/`."""
    from modelscope.hub.cache_manager import scan_cache_dir

    return len(scan_cache_dir(ms).repos) + len(scan_cache_dir(ms / "hub").repos)


def measure_both(cache: Path, ms: Path, runs: int, index: Path) -> list[Row]:
    """The first list and the warm-index scan of both caches, against both libraries."""
    from huggingface_hub import scan_cache_dir

    from vllm_console.core.catalog import scan as catalog

    known, total = warm_index(cache, index, ms)
    print(f"index of both caches: {known} of {total} entries")

    def indexed() -> object:
        catalog.clear_memos()
        return catalog.scan(cache, [], index_path=index, ms_cache=ms)

    t = median_times(
        {
            "list": lambda: catalog.list_models(cache, [], ms),
            "indexed": indexed,
            "child": lambda: scan_in_child(cache, index, total, ms),
            "hf": lambda: scan_cache_dir(cache),
            "ms": lambda: ms_scan_cache_dir(ms),
        },
        runs,
    )
    check_ms_sizes(ms)
    theirs = t["hf"] + t["ms"]
    both = "HF + ModelScope caches"
    return [
        (f"first list, {both}", t["list"], theirs, "<= 50 ms", t["list"] <= LIST_TARGET_S),
        (
            f"complete scan, {both}, warm index, memos cleared",
            t["indexed"],
            theirs,
            ">= 20x",
            theirs / t["indexed"] >= RATIO_TARGET,
        ),
        (
            f"complete scan, {both}, new process, warm index",
            t["child"],
            theirs,
            ">= 20x",
            theirs / t["child"] >= RATIO_TARGET,
        ),
        ("  of which modelscope's scan_cache_dir()", t["ms"], t["ms"], "-", None),
    ]


def check_ms_sizes(ms: Path) -> None:
    """Our ModelScope sizes must be the library's for the layouts it reads, or the timings
    of the ModelScope half mean nothing."""
    from modelscope.hub.cache_manager import scan_cache_dir

    from vllm_console.core.catalog import scan as catalog

    theirs = [*scan_cache_dir(ms).repos, *scan_cache_dir(ms / "hub").repos]
    ours = {
        e.path: e.size_bytes for e in catalog.scan(Path("/nonexistent"), [], ms_cache=ms).entries
    }
    if any(ours.get(r.repo_path) != r.size_on_disk for r in theirs) or not theirs:
        raise SystemExit("sizes differ from modelscope's scan_cache_dir(): the benchmark is void")


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


Row = tuple[str, float, float, str, bool | None]


def measure(cache: Path, runs: int, index: Path) -> list[Row]:
    """Rows of (measure, ours, scan_cache_dir, target, met; None where there is no target)."""
    from huggingface_hub import scan_cache_dir

    from vllm_console.core.catalog import scan as catalog

    def cold_scan() -> object:
        catalog.clear_memos()
        return catalog.scan(cache, [])

    def indexed_scan() -> object:
        catalog.clear_memos()
        return catalog.scan(cache, [], index_path=index)

    def first_indexed_scan() -> object:
        catalog.clear_memos()
        first.unlink(missing_ok=True)
        return catalog.scan(cache, [], index_path=first)

    first = index.with_name("first-" + index.name)
    known, total = warm_index(cache, index)
    print(f"index: {known} of {total} entries, {index.stat().st_size / 1024:.0f} KiB")

    def exact_walk() -> object:
        catalog.clear_memos()
        return [catalog.walk_exact(e) for e in catalog.list_models(cache, []).entries]

    t = median_times(
        {
            "list": lambda: catalog.list_models(cache, []),
            "cold": cold_scan,
            "rescan": lambda: catalog.scan(cache, []),
            "child": lambda: scan_in_child(cache, index, total),
            "indexed": indexed_scan,
            "first": first_indexed_scan,
            "exact": exact_walk,
            "bare": lambda: bare_reads(cache),
            "theirs": lambda: scan_cache_dir(cache),
        },
        runs,
    )
    first_list, cold, warm, child, indexed, written, exact, bare, theirs = (
        t[k]
        for k in ("list", "cold", "rescan", "child", "indexed", "first", "exact", "bare", "theirs")
    )
    check_sizes(cache, index)
    return [
        (
            "first list (names, no sizes)",
            first_list,
            theirs,
            "<= 50 ms",
            first_list <= LIST_TARGET_S,
        ),
        (
            "complete scan, new process, warm index",
            child,
            theirs,
            ">= 20x",
            theirs / child >= RATIO_TARGET,
        ),
        (
            "complete scan, warm index, memos cleared",
            indexed,
            theirs,
            ">= 20x",
            theirs / indexed >= RATIO_TARGET,
        ),
        (
            "complete scan, no index, memos cleared (cold)",
            cold,
            theirs,
            ">= 20x",
            theirs / cold >= RATIO_TARGET,
        ),
        ("complete scan, no index, rescan", warm, theirs, ">= 20x", theirs / warm >= RATIO_TARGET),
        ("floor of a cold scan: its reads alone, nothing built", bare, theirs, "-", None),
        ("complete scan writing a new index", written, theirs, "-", None),
        ("exact walk of every revision (details pane, all repos)", exact, theirs, "-", None),
    ]


def check_sizes(cache: Path, index: Path) -> None:
    """Our repo sizes must be scan_cache_dir's, or the timings mean nothing.

    The bench cache has no orphaned blobs, so the complete scan's blob sum and the exact walk's
    referenced size must both equal scan_cache_dir()'s. The scan with the index must equal the
    scan without it, entry for entry.
    """
    from huggingface_hub import scan_cache_dir

    from vllm_console.core.catalog import scan as catalog

    theirs = {r.repo_id: r.size_on_disk for r in scan_cache_dir(cache).repos}
    catalog.clear_memos()
    entries = catalog.scan(cache, []).entries
    if {e.id: e.size_bytes for e in entries} != theirs:
        raise SystemExit("sizes differ from scan_cache_dir(): the benchmark is void")
    catalog.clear_memos()
    indexed = catalog.scan(cache, [], index_path=index).entries
    if indexed != entries or [e.config for e in indexed] != [e.config for e in entries]:
        raise SystemExit("the scan with the index differs from the scan without: void")
    if {e.id: catalog.walk_exact(e).size_bytes for e in entries} != theirs:
        raise SystemExit("exact sizes differ from scan_cache_dir(): the benchmark is void")


def render(rows: Sequence[Row]) -> str:
    header = ("measure", "ours", "scan_cache_dir", "ratio", "target", "met?")
    table = [header]
    for name, ours, theirs, target, met in rows:
        ratio = f"{theirs / ours:.1f}x" if ours else "-"
        verdict = "-" if met is None else "yes" if met else "NO"
        table.append((name, _ms(ours), _ms(theirs), ratio, target, verdict))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--dir", type=Path, help="cache folder to build or reuse")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measure")
    parser.add_argument("--ms-models", type=int, help="ModelScope models (default: --repos)")
    args = parser.parse_args(argv)
    ms_models = args.repos if args.ms_models is None else args.ms_models
    load_before = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        cache = ensure_cache(args.dir or Path(tmp) / "hub", args.repos)
        ms = ensure_ms_cache(Path(f"{cache}-modelscope"), ms_models)
        rows = measure(cache, args.runs, Path(tmp) / "catalog-index-v1.pickle")
        rows += measure_both(cache, ms, args.runs, Path(tmp) / "both-index.pickle")
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{args.repos} repos x 3 revisions x 20 files, {ms_models} ModelScope models x 20 files")
    print(f"median of {args.runs} warm runs")
    print(f"load average before: {load_before}, after: {load} ({os.cpu_count()} CPUs)")
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
