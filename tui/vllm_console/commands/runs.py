"""`vllm-console runs`: past launches and benchmarks from the run archive, newest first;
`--log ID` prints a launch's log."""

from __future__ import annotations

import json
import sys
import time

from vllm_console.config import Settings
from vllm_console.core.bench.archive import SavedBench, all_benches
from vllm_console.core.serve.runs import RunArchive, RunInfo, log_tail
from vllm_console.core.text import visible


def _summary(run: RunInfo) -> str:
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started))
    took = f"{run.ended - run.started:.0f}s" if run.ended else "-"
    alive = " (alive)" if run.alive_pids() else ""
    # The archive is files on disk: its ids and reasons are shown, never obeyed.
    return visible(f"{run.id}  {started}  {run.status}{alive}  {took}  {run.reason or ''}")


def cmd_runs(settings: Settings, *, as_json: bool, log_id: str | None) -> int:
    archive = RunArchive(settings.runs_dir)
    if log_id is not None:
        run = archive.get(log_id)
        if run is None:
            print(visible(f"vllm-console: no run {log_id!r} in {archive.root}"), file=sys.stderr)
            return 1
        try:  # the end of a huge log; a FIFO or device in its place is refused, not read
            text, cut = log_tail(run)
        except OSError as exc:
            print(visible(f"vllm-console: cannot read {run.log_path}: {exc}"), file=sys.stderr)
            return 1
        if cut:
            print(
                visible(f"vllm-console: only the end of {run.log_path} is shown"), file=sys.stderr
            )
        # A server's log says what the server (or the model's code) printed: a person reads it
        # here; the true bytes stay in the run's log file.
        sys.stdout.write("\n".join(visible(line) for line in text.split("\n")))
        return 0
    runs = archive.all()
    benches = all_benches(archive.root)
    both: list[RunInfo | SavedBench] = [*runs, *benches]
    both.sort(key=lambda item: item.started, reverse=True)
    if as_json:
        print(json.dumps([_json(item) for item in both], indent=2))
        return 0
    if not both:
        print(visible(f"No runs yet (the archive is {archive.root})."))
    for item in both:
        print(_summary(item) if isinstance(item, RunInfo) else _bench_summary(item))
    return 0


def _json(item: RunInfo | SavedBench) -> dict[str, object]:
    return item.to_json() if isinstance(item, RunInfo) else item.data


def _bench_summary(bench: SavedBench) -> str:
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(bench.started))
    return visible(f"{bench.id}  {started}  {bench.summary()}")
