"""Processes as Linux shows them in /proc: sessions, names, listeners, leftover vLLMs.

vLLM renames its engine and workers (`VLLM::EngineCore`, `VLLM::Worker`), so they are found by
name here rather than by "python" or "vllm serve" in their command lines.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

VLLM_NAME_PREFIX = "VLLM::"
_TCP_LISTEN = "0A"


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    name: str
    session: int
    cmdline: str

    def describe(self) -> str:
        return f"{self.name} (pid {self.pid})"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session id is `sid`."""
    return sessions_pids((sid,))[sid]


def sessions_pids(sids: Collection[int]) -> dict[int, list[int]]:
    """Live processes of each session in `sids`, in one pass over /proc (a fleet's servers
    are read together every few seconds)."""
    found: dict[int, list[int]] = {sid: [] for sid in sids}
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields and len(fields) > 3 and fields[0] != "Z":
            members = found.get(int(fields[3]))
            if members is not None:
                members.append(pid)
    return found


def proc_info(pid: int) -> ProcInfo | None:
    fields = _stat_fields(pid)
    if not fields or fields[0] == "Z":
        return None
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    cmdline = raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
    return ProcInfo(pid, name, int(fields[3]), cmdline)


def vllm_processes() -> list[ProcInfo]:
    """Processes that vLLM renamed, wherever they came from."""
    found = []
    for pid in _all_pids():
        info = proc_info(pid)
        if info and info.name.startswith(VLLM_NAME_PREFIX):
            found.append(info)
    return found


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if (
                len(parts) > 9
                and parts[3] == _TCP_LISTEN
                and int(parts[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(parts[9])
    return inodes


def port_holders(port: int) -> list[ProcInfo]:
    """Processes with a listening socket on `port` (those this user may inspect)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return []
    targets = {f"socket:[{inode}]" for inode in inodes}
    holders = []
    for pid in _all_pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                    info = proc_info(pid)
                    if info:
                        holders.append(info)
                    break
            except OSError:
                continue
    return holders


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def kill_pids(pids: list[int]) -> list[str]:
    """SIGKILL each PID; one line per PID saying what happened (gone already, not allowed)."""
    said = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            said.append(f"pid {pid} had already exited")
        except PermissionError:
            said.append(f"pid {pid}: not allowed (another user's process: sudo kill -9 {pid})")
        else:
            said.append(f"pid {pid} killed")
    return said
