"""Pausing the cyclic garbage collector while the catalog makes thousands of objects.

A listing or a scan allocates containers by the thousand (entries, paths, parsed JSON) and
leaves no cycles behind, so every collection they trigger finds nothing; a full one walks
everything the process holds (a tenth to a quarter of a 1,000-repo listing's time in a process
that has imported the hub library). `paused()` turns collection off for a block and back on
after it if it was on. Nesting and other threads are harmless: the worst case is a collection
that runs anyway.
"""

from __future__ import annotations

import gc
from types import TracebackType


class paused:
    """`with nogc.paused(): ...`"""

    __slots__ = ("_was_on",)

    def __enter__(self) -> None:
        self._was_on = gc.isenabled()
        gc.disable()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._was_on:
            gc.enable()
