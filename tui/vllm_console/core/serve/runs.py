"""The run archive: each launch's command, environment, full log, phases and end, on disk.

One folder per launch under `<state dir>/runs/`: `run.json` (secrets redacted) and `log.txt`.
A run whose record still says "running" while its process session is alive is a server left
from an earlier console (left running on purpose, or orphaned): start-up offers to stop it.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vllm_console.core.serve.proctable import session_pids
from vllm_console.core.serve.spec import redact_argv, redact_env

RUNNING = "running"
LEFT_RUNNING = "left running"


@dataclass(frozen=True)
class RunInfo:
    id: str
    dir: Path
    model: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    started: float
    port: int | None = None
    pid: int | None = None
    status: str = RUNNING
    ended: float | None = None
    returncode: int | None = None
    reason: str | None = None
    phases: tuple[tuple[str, float], ...] = ()
    findings: tuple[str, ...] = field(default=())

    @property
    def log_path(self) -> Path:
        return self.dir / "log.txt"

    def alive_pids(self) -> list[int]:
        """Processes of this run's session still alive (the server's pid is the session id)."""
        return session_pids(self.pid) if self.pid else []

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "argv": list(self.argv),
            "env": dict(self.env),
            "started": self.started,
            "port": self.port,
            "pid": self.pid,
            "status": self.status,
            "ended": self.ended,
            "returncode": self.returncode,
            "reason": self.reason,
            "phases": [list(p) for p in self.phases],
            "findings": list(self.findings),
            "log": str(self.log_path),
        }

    @classmethod
    def from_json(cls, run_dir: Path, data: Mapping[str, Any]) -> RunInfo:
        return cls(
            id=str(data["id"]),
            dir=run_dir,
            model=str(data.get("model", "?")),
            argv=tuple(data.get("argv", ())),
            env=dict(data.get("env", {})),
            started=float(data.get("started", 0.0)),
            port=data.get("port"),
            pid=data.get("pid"),
            status=str(data.get("status", RUNNING)),
            ended=data.get("ended"),
            returncode=data.get("returncode"),
            reason=data.get("reason"),
            phases=tuple((str(p), float(s)) for p, s in data.get("phases", ())),
            findings=tuple(data.get("findings", ())),
        )


class RunRecorder:
    """Writes one run as it happens. The log file is appended in batches."""

    def __init__(self, info: RunInfo) -> None:
        self.info = info
        self._log = info.log_path.open("a", encoding="utf-8")
        self._save()

    def _save(self) -> None:
        tmp = self.info.dir / "run.json.tmp"
        tmp.write_text(json.dumps(self.info.to_json(), indent=2))
        tmp.replace(self.info.dir / "run.json")

    def update(self, **changes: Any) -> None:
        data = {**self.info.to_json(), **changes}
        self.info = RunInfo.from_json(self.info.dir, data)
        self._save()

    def write_lines(self, lines: Iterable[str]) -> None:
        self._log.writelines(line + "\n" for line in lines)
        self._log.flush()

    def finish(
        self,
        *,
        status: str,
        returncode: int | None,
        reason: str,
        phases: Sequence[tuple[str, float]] = (),
        findings: Sequence[str] = (),
    ) -> None:
        try:
            self.update(
                status=status,
                ended=time.time(),
                returncode=returncode,
                reason=reason,
                phases=[list(p) for p in phases],
                findings=list(findings),
            )
        finally:  # a record that cannot be written still lets go of its log
            self._log.close()

    def leave_running(self, *, reason: str, phases: Sequence[tuple[str, float]] = ()) -> None:
        """The console quits and the server stays: recorded so a later console can attach."""
        try:
            self.update(status=LEFT_RUNNING, reason=reason, phases=[list(p) for p in phases])
        finally:
            self._log.close()


class RunArchive:
    def __init__(self, root: Path) -> None:
        self.root = root

    def new(
        self, model: str, argv: Sequence[str], env: Mapping[str, str], port: int | None
    ) -> RunRecorder:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model.rstrip("/").rsplit("/", 1)[-1])[:40]
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = self.root / f"{stamp}-{slug}"
        suffix = 1
        while run_dir.exists():
            suffix += 1
            run_dir = self.root / f"{stamp}-{slug}-{suffix}"
        run_dir.mkdir(parents=True)
        info = RunInfo(
            id=run_dir.name,
            dir=run_dir,
            model=model,
            argv=tuple(redact_argv(argv)),
            env=redact_env(env),
            started=time.time(),
            port=port,
        )
        return RunRecorder(info)

    def all(self) -> list[RunInfo]:
        """Newest first; a damaged record is skipped, not fatal."""
        runs: list[RunInfo] = []
        try:
            dirs = sorted(os.scandir(self.root), key=lambda d: d.name, reverse=True)
        except OSError:
            return []
        for entry in dirs:
            try:
                data = json.loads(Path(entry.path, "run.json").read_text(encoding="utf-8"))
                runs.append(RunInfo.from_json(Path(entry.path), data))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return runs

    def get(self, run_id: str) -> RunInfo | None:
        return next((run for run in self.all() if run.id == run_id), None)

    def leftovers(self) -> list[RunInfo]:
        """Runs recorded as running whose processes are still alive."""
        return [
            run for run in self.all() if run.status in (RUNNING, LEFT_RUNNING) and run.alive_pids()
        ]
