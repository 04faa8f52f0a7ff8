"""`vllm-console up FILE`: every server of a fleet file, headless, until Ctrl-C.

Like `serve` for several servers: each log line on stdout prefixed with its server's name
(`chat  | line`), one line `READY NAME URL SERVED_NAME` per server when it answers, one
`REMOTE NAME URL up|down` per remote member (probed once, never stopped), the rest (how each
name resolved, phases, diagnoses) on stderr with the same prefix. A server that fails is
reported with its diagnosis while the others keep running. Ctrl-C or SIGTERM stops them all.

Exit status: 2 when the file is bad or a server cannot start (nothing started then), 1 when
any server failed (or GPU memory stayed held after the stop), 0 when all were stopped.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from vllm_console.commands.serve import note_pids, print_finding, report_gpu
from vllm_console.config import Settings
from vllm_console.core.fleet.model import Member
from vllm_console.core.fleet.up import (
    Fleet,
    FleetEvent,
    Launch,
    NotStarted,
    Plan,
    Waiting,
    plan,
    probe_remote,
)
from vllm_console.core.gpu.owners import check_released
from vllm_console.core.serve.redact import API_KEY_ENV, REDACTED, redact_argv
from vllm_console.core.serve.session import SessionEnded, Spawned
from vllm_console.core.serve.supervisor import LogLine, PhaseChanged, Ready, Stalled
from vllm_console.core.text import visible


def cmd_up(settings: Settings, path: Path) -> int:
    from vllm_console.core.fleet.file import FleetFileError, load_fleet

    try:
        fleet = load_fleet(path, settings)
    except FleetFileError as exc:
        for problem in exc.problems:
            print(visible(f"vllm-console: {problem}"), file=sys.stderr)
        print("vllm-console: nothing started", file=sys.stderr)
        return 2
    return run_up(settings, fleet.members, origin=f"up {path.absolute()}")


def run_up(settings: Settings, members: Sequence[Member], *, origin: str) -> int:
    """Plan, then run the fleet until every server has ended; the exit status."""
    err = sys.stderr
    planned = plan(settings, members)
    for note in planned.notes:
        print(visible(note), file=err)
    if planned.problems:
        for problem in planned.problems:
            print(visible(f"vllm-console: {problem}"), file=err)
        print("vllm-console: nothing started", file=err)
        return 2
    return asyncio.run(Up(settings, planned, origin).run())


class Up:
    """One `up`: prints what its fleet does and counts how it ended."""

    def __init__(self, settings: Settings, planned: Plan, origin: str) -> None:
        self.planned = planned
        self.fleet = Fleet(settings, planned.launches, origin=origin)
        names = [launch.name for launch in planned.launches] + [m.name for m in planned.remotes]
        self.width = max((len(visible(name)) for name in names), default=0)
        self.failed: list[str] = []
        self.seen: set[int] = set()  # every pid of every server: they must let go of the GPU

    def prefix(self, name: str) -> str:
        return f"{visible(name):<{self.width}} | "

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.probe_remotes())
                group.create_task(self.fleet.run(self.show))
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        held = await asyncio.to_thread(check_released, self.seen) if self.seen else None
        code = self.summary()
        return report_gpu(held) or code

    def stop(self) -> None:
        if self.fleet.stopping:
            return
        self.note_all_pids()
        running = sum(1 for ended in self.fleet.ended.values() if ended is None)
        print(f"stopping {running} server(s) ...", file=sys.stderr, flush=True)
        self.fleet.stop_all()

    def note_all_pids(self) -> None:
        for session in self.fleet.sessions.values():
            note_pids(session, self.seen)

    async def probe_remotes(self) -> None:
        remotes = self.planned.remotes
        answers = await asyncio.gather(*(probe_remote(member) for member in remotes))
        for member, up in zip(remotes, answers, strict=True):
            said = f"REMOTE {member.name} {member.url} {'up' if up else 'down'}"
            print(visible(said), flush=True)

    def show(self, launch: Launch, event: FleetEvent) -> None:
        out, err, prefix = sys.stdout, sys.stderr, self.prefix(launch.name)
        if isinstance(event, LogLine):
            out.write("".join(f"{prefix}{visible(line)}\n" for line in event.lines))
            out.flush()
        elif isinstance(event, Ready):
            said = f"READY {launch.name} {launch.url} {launch.spec.served_model_name}"
            print(visible(said), file=out, flush=True)
            note_pids(self.fleet.sessions[launch.name], self.seen)
        elif isinstance(event, Spawned):
            key = f"{API_KEY_ENV}={REDACTED} " if launch.spec.api_key else ""
            print(prefix + visible("$ " + key + shlex.join(redact_argv(launch.argv))), file=err)
            print(prefix + visible(f"run archived in {event.run.dir}"), file=err, flush=True)
        elif isinstance(event, PhaseChanged):
            took = f"{event.previous} {event.previous_seconds:.1f}s"
            print(f"{prefix}[phase] {event.phase} (after {took})", file=err, flush=True)
        elif isinstance(event, Stalled):
            print_finding(event.finding, err, prefix)
        elif isinstance(event, Waiting):
            others = ", ".join(event.after)
            print(prefix + visible(f"waits for {others} (their GPUs overlap)"), file=err)
        elif isinstance(event, NotStarted):
            print(f"{prefix}not started: stopped while it waited", file=err, flush=True)
        elif isinstance(event, SessionEnded):
            self.ended(launch, event, prefix)

    def ended(self, launch: Launch, ended: SessionEnded, prefix: str) -> None:
        err = sys.stderr
        if ended.stopped:
            report = ended.report
            print(
                prefix + (f"stopped in {report.seconds:.1f}s" if report else ended.note), file=err
            )
            return
        self.failed.append(launch.name)
        for finding in ended.findings:
            print_finding(finding, err, prefix)
        print(prefix + visible(f"vllm-console: {launch.name} failed: {ended.reason}"), file=err)
        err.flush()

    def summary(self) -> int:
        """The last line on stderr; 1 when any server failed."""
        total = len(self.planned.launches)
        if not self.failed:
            if total:
                print(f"all {total} server(s) stopped", file=sys.stderr)
            return 0
        names = ", ".join(self.failed)
        print(
            visible(f"vllm-console: {len(self.failed)} of {total} failed: {names}"), file=sys.stderr
        )
        return 1
