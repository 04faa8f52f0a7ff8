"""The run archive: each launch's command, environment, full log, phases and end, on disk.

One folder per launch under `<state dir>/runs/`: `run.json` (secrets redacted) and `log.txt`.
A run whose record still says "running" while its process session is alive is a server left
from an earlier console (left running on purpose, or orphaned): start-up offers to stop it.

The state folder, `runs/` and each run's folder are 0700, their files 0600. A record is read
without trust: at most META_LIMIT bytes of a regular file, every field of the expected type
and in a plausible range, else the run is skipped as damaged.
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

from vllm_console.core.files import (
    open_private_append,
    private_dir,
    read_capped,
    read_range,
    write_private,
)
from vllm_console.core.serve.proctable import session_pids
from vllm_console.core.serve.redact import redact_argv, redact_env
from vllm_console.core.serve.spec import LaunchSpec, without_secrets

RUNNING = "running"
LEFT_RUNNING = "left running"
META_LIMIT = 1 << 20  # a record is a few KB
LOG_PRINT_LIMIT = 16 << 20  # `runs --log` prints the end of a bigger log
LATEST_TIME = 2.0**33  # seconds since 1970: the year 2242; later is not a real time
PID_LIMIT = 1 << 22  # Linux's highest pid_max
STOP_ASKED = "stop-asked"  # a file in the run's folder: someone else asked this server to stop


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
    name: str | None = None  # the server's name in its fleet (None: recorded before fleets)
    gpus: tuple[int, ...] | None = None  # the GPUs it was given (None: what it inherited)
    origin: str | None = None  # who started it: "console" or "up FILE"
    # what was launched, secrets out (`without_secrets`); None: recorded before specs were
    spec: LaunchSpec | None = None

    @property
    def server_name(self) -> str:
        return self.name or self.model

    @property
    def log_path(self) -> Path:
        return self.dir / "log.txt"

    def stop_asked(self) -> str | None:
        """Why another process (`vllm-console stop`, another console) asked this server to
        stop, if one did: its owner then counts the exit as a stop, not a failure."""
        try:
            return read_capped(self.dir / STOP_ASKED, 4096).decode("utf-8", "replace") or None
        except OSError:
            return None

    def ask_stop(self, reason: str) -> None:
        """Say, before signalling, that this server is being stopped on purpose (OSError if
        the run's folder cannot be written)."""
        write_private(self.dir / STOP_ASKED, reason)

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
            "name": self.name,
            "gpus": None if self.gpus is None else list(self.gpus),
            "origin": self.origin,
            "spec": None if self.spec is None else self.spec.to_json(),
            "log": str(self.log_path),
        }

    @classmethod
    def from_json(cls, run_dir: Path, data: Mapping[str, Any]) -> RunInfo:
        """A record from its JSON; ValueError, KeyError or TypeError when it is damaged."""
        if not isinstance(data, Mapping):
            raise TypeError("a run record is a JSON object")
        phases = _list(data.get("phases", []))
        if not all(isinstance(p, list | tuple) and len(p) == 2 for p in phases):
            raise ValueError("phases: pairs of a name and seconds expected")
        return cls(
            id=_text(data["id"]),
            dir=run_dir,
            model=_text(data.get("model", "?")),
            argv=tuple(_text(a) for a in _list(data.get("argv", []))),
            env={_text(k): _text(v) for k, v in _dict(data.get("env", {})).items()},
            started=_seconds(data.get("started", 0.0)),
            port=_optional_int(data.get("port"), 0, 65535),
            pid=_optional_int(data.get("pid"), 1, PID_LIMIT),
            status=_text(data.get("status", RUNNING)),
            ended=None if data.get("ended") is None else _seconds(data["ended"]),
            returncode=_optional_int(data.get("returncode"), -(1 << 31), 1 << 31),
            reason=None if data.get("reason") is None else _text(data["reason"]),
            phases=tuple((_text(p), _seconds(s)) for p, s in phases),
            findings=tuple(_text(f) for f in _list(data.get("findings", []))),
            name=_optional_text(data.get("name")),
            gpus=_gpus(data.get("gpus")),
            origin=_optional_text(data.get("origin")),
            spec=_spec(data.get("spec")),
        )


def _spec(value: object) -> LaunchSpec | None:
    """A recorded spec, or None when there is none or it is damaged: the run's record is
    still good without it (only a saved fleet file needs it)."""
    if not isinstance(value, dict):
        return None
    try:
        return LaunchSpec.from_json(value)
    except (TypeError, ValueError):
        return None


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("text expected")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _gpus(value: object) -> tuple[int, ...] | None:
    if value is None:
        return None
    items = _list(value)
    if len(items) > 1024:
        raise ValueError("too many GPUs")
    if any(i is None for i in items):
        raise TypeError("a GPU index expected")
    return tuple(int(_optional_int(i, 0, 1 << 16) or 0) for i in items)


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError("a list expected")
    return value


def _dict(value: object) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise TypeError("an object expected")
    return value


def _seconds(value: object) -> float:
    """A time or a duration: a finite number from 0 to LATEST_TIME."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("a number expected")
    if not 0 <= value <= LATEST_TIME:  # NaN fails this too
        raise ValueError("an implausible time")
    return float(value)


def _optional_int(value: object, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("a whole number expected")
    if not low <= value <= high:
        raise ValueError("an implausible number")
    return value


class RunRecorder:
    """Writes one run as it happens. The log file is appended in batches."""

    def __init__(self, info: RunInfo) -> None:
        self.info = info
        self._log = open_private_append(info.log_path)
        self._save()

    def _save(self) -> None:
        write_private(self.info.dir / "run.json", json.dumps(self.info.to_json(), indent=2))

    def update(self, **changes: Any) -> None:
        data = {**self.info.to_json(), **changes}
        self.info = RunInfo.from_json(self.info.dir, data)
        self._save()

    def write_lines(self, lines: Iterable[str]) -> None:
        text = "\n".join(lines)  # one write: a text file's per-line cost adds up at 40k lines/s
        if text:
            self._log.write(text + "\n")
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
        self,
        model: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        port: int | None,
        *,
        name: str | None = None,
        gpus: Sequence[int] | None = None,
        origin: str | None = None,
        spec: LaunchSpec | None = None,
    ) -> RunRecorder:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model.rstrip("/").rsplit("/", 1)[-1])[:40]
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = self.root / f"{stamp}-{slug}"
        suffix = 1
        # the state folder above runs/ is the console's too
        private_dir(self.root, owned=self.root.parent)
        while run_dir.exists():
            suffix += 1
            run_dir = self.root / f"{stamp}-{slug}-{suffix}"
        run_dir.mkdir(mode=0o700)
        os.chmod(run_dir, 0o700)  # whatever the umask
        info = RunInfo(
            id=run_dir.name,
            dir=run_dir,
            model=model,
            argv=tuple(redact_argv(argv)),
            env=redact_env(env),
            started=time.time(),
            port=port,
            name=name,
            gpus=None if gpus is None else tuple(gpus),
            origin=origin,
            spec=None if spec is None else without_secrets(spec),
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
                raw = read_capped(Path(entry.path, "run.json"), META_LIMIT)
            except OSError:
                continue
            if (run := parse_record(Path(entry.path), raw)) is not None:
                runs.append(run)
        return runs

    def get(self, run_id: str) -> RunInfo | None:
        return next((run for run in self.all() if run.id == run_id), None)

    def leftovers(self) -> list[RunInfo]:
        """Runs recorded as running whose processes are still alive."""
        return [
            run for run in self.all() if run.status in (RUNNING, LEFT_RUNNING) and run.alive_pids()
        ]


def parse_record(run_dir: Path, raw: bytes) -> RunInfo | None:
    """The run recorded in `raw` (a run.json's bytes), or None if the record is damaged."""
    try:
        return RunInfo.from_json(run_dir, json.loads(raw))
    except (ValueError, KeyError, TypeError, RecursionError):  # Recursion: nested too deep
        return None


def log_tail(run: RunInfo, limit: int = LOG_PRINT_LIMIT) -> tuple[str, bool]:
    """The run's log (its last `limit` bytes, from a line's start) and whether it was cut;
    OSError when it cannot be read (missing, or not a regular file)."""
    data, start = read_range(run.log_path, 0, limit)
    cut = start > 0
    if cut:
        data = data[data.find(b"\n") + 1 :]
    return data.decode("utf-8", errors="replace"), cut
