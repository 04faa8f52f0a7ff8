"""Servers left from earlier runs, found at start-up, before a launch collides with them.

Three sources, each process group listed once: runs recorded as running whose processes
live, processes vLLM renamed (`VLLM::…`), and whatever listens on the configured port.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vllm_console.config import Settings
from vllm_console.core.serve.attach import age
from vllm_console.core.serve.proctable import port_holders, vllm_processes
from vllm_console.core.serve.runs import LEFT_RUNNING, RunArchive, RunInfo


@dataclass(frozen=True)
class Leftover:
    pgid: int
    what: str
    run: RunInfo | None = None

    @property
    def attachable(self) -> bool:
        return self.run is not None and self.run.status == LEFT_RUNNING


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def find_leftovers(settings: Settings) -> list[Leftover]:
    """Everything a launch might collide with; never the console's own process group."""
    own = {os.getpgrp(), os.getsid(0)}
    found: list[Leftover] = []
    seen: set[int] = set(own)
    for run in RunArchive(settings.runs_dir).leftovers():
        if run.pid is None or run.pid in seen:
            continue
        seen.add(run.pid)
        port = f" · port {run.port}" if run.port else ""
        what = f"{run.model} · {run.status} · {age(run)} old{port} · run {run.id}"
        found.append(Leftover(run.pid, what, run))
    for proc in vllm_processes():
        group = _group(proc.pid)
        if group is not None and group not in seen:
            seen.add(group)
            found.append(Leftover(group, f"{proc.describe()} · vLLM, not started by us"))
    for proc in port_holders(settings.port):
        group = _group(proc.pid)
        if group is not None and group not in seen:
            seen.add(group)
            found.append(Leftover(group, f"{proc.describe()} · listens on port {settings.port}"))
    return found
