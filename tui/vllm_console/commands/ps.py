"""`vllm-console ps` and `vllm-console stop`: the servers running on this machine.

`ps` lists every server any console, `serve` or `up` started (the run archive, checked
against the live process table and each server's /health; stale records are dropped).
`stop NAME|RUN_ID` or `stop --all` stops servers through their own process group, as a
console stops its own: SIGTERM, the grace period, SIGKILL of the group. Stopping one never
touches another's processes. A server that `up` or a console still runs is stopped all the
same, and its owner reports that it ended.
"""

from __future__ import annotations

import asyncio
import json
import sys

from vllm_console.config import Settings
from vllm_console.core.fleet.registry import Entry, find, list_servers, uptime_text
from vllm_console.core.serve.attach import stop
from vllm_console.core.serve.process import StopReport
from vllm_console.core.text import visible

COLUMNS = ("NAME", "MODEL", "PID", "PORT", "GPUS", "STATUS", "UPTIME", "ORIGIN")


def _row(entry: Entry) -> tuple[str, ...]:
    gpus = "-" if entry.gpus is None else ",".join(map(str, entry.gpus))
    return (
        entry.name,
        entry.model,
        str(entry.pid),
        str(entry.port or "-"),
        gpus,
        entry.status,
        uptime_text(entry.uptime),
        entry.origin or "-",
    )


def cmd_ps(settings: Settings, *, as_json: bool) -> int:
    entries = asyncio.run(list_servers(settings))
    if as_json:
        print(json.dumps([entry.to_json() for entry in entries], indent=2))
        return 0
    if not entries:
        print(visible(f"No servers running (none recorded in {settings.runs_dir})."))
        return 0
    # Names, models and origins come from run records on disk: shown, never obeyed.
    rows = [COLUMNS, *([visible(cell) for cell in _row(entry)] for entry in entries)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def cmd_stop(settings: Settings, name: str | None, *, every: bool) -> int:
    err = sys.stderr
    if (name is None) == (not every):
        print("vllm-console stop: name one server (see ps) or give --all, not both", file=err)
        return 2
    entries = asyncio.run(list_servers(settings))
    chosen = entries if every else find(entries, name or "")
    if not chosen:
        if every:
            print("No servers running.", file=err)
            return 0
        names = ", ".join(sorted({e.name for e in entries})) or "none"
        print(visible(f"vllm-console: no server {name!r} is running; running: {names}"), file=err)
        return 1
    if len(chosen) > 1 and not every:
        ids = ", ".join(e.run_id for e in chosen)
        said = f"{len(chosen)} servers are named {name!r}; stop one by its run id: {ids}"
        print(visible(f"vllm-console: {said}"), file=err)
        return 1
    reports = asyncio.run(_stop(settings, chosen))
    return max(_said(entry, report) for entry, report in zip(chosen, reports, strict=True))


async def _stop(settings: Settings, entries: list[Entry]) -> list[StopReport]:
    return list(await asyncio.gather(*(stop(settings, entry.run_id) for entry in entries)))


def _said(entry: Entry, report: StopReport) -> int:
    """One line on how the stop went; 1 if anything survived it."""
    what = visible(f"{entry.name} (run {entry.run_id})")
    if report.clean:
        killed = ", killed after the grace period" if report.killed else ""
        print(f"stopped {what} in {report.seconds:.1f}s{killed}")
        return 0
    survivors = ", ".join(map(str, report.survivors))
    print(
        f"vllm-console: {what}: processes still alive after the stop: {survivors}", file=sys.stderr
    )
    return 1
