"""The server log pane under a flood: 50,000 lines/s for 5 s, p99 event-loop lag.

    .venv/bin/python bench/bench_log_pane.py [--rate 50000] [--seconds 5]

Runs a headless 120x40 App twice in one process, with the same feed: vLLM-like lines
arriving in chunks every ~10 ms (whatever is due at the asked rate), like a reader task would
get them. Measured: the event loop's lag (a 10 ms sleep that wakes late), p50/p99/max, and how
long after the feed the last line is on screen. The log is 64 columns wide, as the server
pane in a 120-column terminal, so the console folds each ~115-character line onto two rows.

- console: `BufferedLog.feed()` per chunk; the pane flushes every 50 ms with `write_lines`.
- reference: `Log.write_line` once per line, as a naive pane would.

Target: console p99 lag <= 50 ms. Exit status 1 when missed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tui"))

from textual.app import App, ComposeResult
from textual.widgets import Log

from vllm_console.widgets.server.log_view import MAX_LINES, BufferedLog

TARGET_P99_MS = 50.0
CHUNK_INTERVAL = 0.01
LINE = (
    "(EngineCore pid=4244) INFO 11-26 11:06:{s:02d} [loader.py:{n}] Loading weights "
    "shard {n} of 50000: 1.2 GiB done, 42.0% of the model"
)

# Made before the clock starts: the benchmark measures the pane, not string formatting.
POOL = [LINE.format(s=n % 60, n=n) for n in range(10_000)]


class Host(App[None]):
    # as wide as the server pane in a 120-column terminal: the console folds these lines
    CSS = "#log { width: 64; }"

    def __init__(self, buffered: bool) -> None:
        super().__init__()
        self.buffered = buffered

    def compose(self) -> ComposeResult:
        yield BufferedLog(id="log") if self.buffered else Log(max_lines=MAX_LINES, id="log")


async def feed(log: Log, buffered: bool, rate: int, seconds: float) -> int:
    """Keep up with the asked rate: each chunk is what is due by now (about rate x 10 ms)."""
    sent = 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate) - sent
        chunk = [POOL[(sent + i) % len(POOL)] for i in range(max(0, due))]
        if buffered:
            assert isinstance(log, BufferedLog)
            log.feed(chunk)
        else:
            for line in chunk:
                log.write_line(line)
        sent += len(chunk)
        await asyncio.sleep(CHUNK_INTERVAL)
    return sent


async def lag_probe(stop: asyncio.Event, lags: list[float]) -> None:
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(CHUNK_INTERVAL)
        lags.append((time.perf_counter() - before - CHUNK_INTERVAL) * 1000)


async def run(buffered: bool, rate: int, seconds: float) -> dict[str, float]:
    app = Host(buffered)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        log = app.query_one("#log", Log)
        lags: list[float] = []
        stop = asyncio.Event()
        probe = asyncio.create_task(lag_probe(stop, lags))
        start = time.monotonic()
        sent = await feed(log, buffered, rate, seconds)
        fed = time.monotonic()
        while buffered and isinstance(log, BufferedLog) and log.pending:
            await asyncio.sleep(0.005)
        await pilot.pause()
        caught_up = time.monotonic()
        stop.set()
        await probe
    lags.sort()
    return {
        "lines/s": sent / (fed - start),
        "p50": statistics.median(lags),
        "p99": lags[int(len(lags) * 0.99) - 1],
        "max": lags[-1],
        "catch-up ms": (caught_up - fed) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    console = asyncio.run(run(True, args.rate, args.seconds))
    reference = asyncio.run(run(False, args.rate, args.seconds))
    print(f"feed: {args.rate} lines/s asked for {args.seconds:g} s, 120x40, headless")
    print("| measure | console (feed + write_lines/50 ms) | reference (write_line) |")
    print("|---|---|---|")
    for key in ("lines/s", "p50", "p99", "max", "catch-up ms"):
        unit = "" if key in ("lines/s", "catch-up ms") else " ms lag"
        print(f"| {key} | {console[key]:,.1f}{unit} | {reference[key]:,.1f}{unit} |")
    met = console["p99"] <= TARGET_P99_MS
    print(f"target: console p99 lag <= {TARGET_P99_MS:g} ms: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
