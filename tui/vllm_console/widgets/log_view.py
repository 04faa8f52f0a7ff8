"""A log view that keeps up with a chatty server: lines are buffered and written in batches.

`feed()` only appends to a list; a timer flushes it every FLUSH_INTERVAL with one
`Log.write_lines` call, so 50,000 lines/s cost a few screen updates a second, not 50,000.
All lines are kept (bounded, like the Log), so a filter (warnings and errors only, or a
search) can be applied and removed without losing anything.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable

from textual.reactive import var
from textual.widgets import Log

FLUSH_INTERVAL = 0.05
MAX_LINES = 20_000
_PROBLEM = re.compile(r"\b(WARNING|WARN|ERROR|CRITICAL|FATAL)\b|Traceback|Error:|Exception")


def is_problem(line: str) -> bool:
    """A warning or an error line (vLLM's level words, Python tracebacks and exceptions)."""
    return _PROBLEM.search(line) is not None


class BufferedLog(Log):
    """`Log` fed through a buffer; `problems_only` and `search` filter what is shown."""

    problems_only: var[bool] = var(False)
    search: var[str] = var("")

    def __init__(self, *, max_lines: int = MAX_LINES, id: str | None = None) -> None:
        super().__init__(max_lines=max_lines, auto_scroll=True, id=id)
        self._all: deque[str] = deque(maxlen=max_lines)
        self._pending: list[str] = []

    def on_mount(self) -> None:
        self.set_interval(FLUSH_INTERVAL, self.flush, name="log-flush")

    @property
    def all_lines(self) -> list[str]:
        """Every line kept, shown or not, including those not flushed yet."""
        return [*self._all, *self._pending]

    @property
    def pending(self) -> int:
        return len(self._pending)

    def feed(self, lines: Iterable[str]) -> None:
        """Queue lines; they appear with the next flush."""
        self._pending.extend(lines)

    def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self._all.extend(batch)
        filtered = self.problems_only or self.search
        shown = [line for line in batch if self._shows(line)] if filtered else batch
        if shown:
            self.write_lines(shown)

    def reset(self, lines: Iterable[str] = ()) -> None:
        """Forget everything and show `lines` instead (a new run, or a recorded log)."""
        self._pending = []
        self._all.clear()
        self._all.extend(lines)
        self._rewrite()

    def _shows(self, line: str) -> bool:
        if self.problems_only and not is_problem(line):
            return False
        return not self.search or self.search.lower() in line.lower()

    def _rewrite(self) -> None:
        self.clear()
        self.write_lines([line for line in self._all if self._shows(line)])

    def watch_problems_only(self) -> None:
        self.flush()
        self._rewrite()

    def watch_search(self) -> None:
        self.flush()
        self._rewrite()
