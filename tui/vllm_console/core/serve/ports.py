"""The port a new server takes: the one asked for, or, when that one is busy, the next free one.

Busy means another server of the console has it (a vLLM that is still starting does not
listen yet, so only the caller knows: `taken`) or something listens there (a bind test, a
few microseconds a port). Who holds the asked port is read from /proc for the note that says
why the port moved; that walk is slower (every process's open files), so run this off the UI
thread.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from vllm_console.core.serve.proctable import ProcInfo, port_holders, port_is_free

PORT_TRIES = 100  # ports looked at after the asked one


@dataclass(frozen=True)
class PortChoice:
    """The asked port, the one to use (None: none free among the next PORT_TRIES), and who
    holds the asked one when it is busy."""

    wanted: int
    port: int | None
    holder: str = ""

    @property
    def moved(self) -> bool:
        return self.port != self.wanted

    def note(self) -> str:
        """One line for the user; empty when the asked port is free."""
        if not self.moved:
            return ""
        if self.port is None:
            return f"{self.wanted} is busy ({self.holder}), and so are the next {PORT_TRIES}"
        return f"{self.wanted} is busy ({self.holder}): using {self.port}"


def _holder(port: int, taken: Collection[int], holders: Callable[[int], list[ProcInfo]]) -> str:
    found = holders(port)
    if found:
        return ", ".join(f"{p.name}/{p.pid}" for p in found)
    return "another server of this console" if port in taken else "in use"


def choose_port(
    host: str,
    wanted: int,
    taken: Collection[int] = (),
    *,
    is_free: Callable[[str, int], bool] = port_is_free,
    holders: Callable[[int], list[ProcInfo]] = port_holders,
) -> PortChoice:
    """`wanted` if no server in `taken` has it and it can be bound on `host`, else the next
    port that can (at most PORT_TRIES further, never past 65535)."""
    if wanted not in taken and is_free(host, wanted):
        return PortChoice(wanted, wanted)
    holder = _holder(wanted, taken, holders)
    for port in range(wanted + 1, min(65535, wanted + PORT_TRIES) + 1):
        if port not in taken and is_free(host, port):
            return PortChoice(wanted, port, holder)
    return PortChoice(wanted, None, holder)
