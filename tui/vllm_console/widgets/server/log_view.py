"""A log view that keeps up with a chatty server: lines are buffered and written in batches.

`feed()` only appends to a list; a timer flushes it every FLUSH_INTERVAL with one
`Log.write_lines` call, so 50,000 lines/s cost a few screen updates a second, not 50,000.
A log not on screen (another server's pane, another tab) only keeps its lines and draws them
when it is shown again.
All lines are kept (bounded, like the Log), so a filter (warnings and errors only, or a
search) can be applied and removed without losing anything.

Lines longer than the view are folded onto the next rows (at a space near the edge when
there is one, continuations indented by two spaces), as they are written: vLLM's log lines
run to 150-250 characters and the pane is often 60 wide. A new width folds everything kept
again.

Lines are kept as the server wrote them (the filter searches them, a saved log holds them) and
shown with their control characters made visible: a server's log, or a model's code printing
into it, must not retitle or clear the terminal.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable

from textual.reactive import var
from textual.timer import Timer
from textual.widgets import Log

from vllm_console.core.text import visible
from vllm_console.widgets.shown import is_shown

FLUSH_INTERVAL = 0.05
MAX_LINES = 20_000
INDENT = "  "  # before the continuation rows of a folded line
MIN_FOLD_WIDTH = 20  # narrower than this (not laid out yet, say), lines are not folded
_PROBLEM = re.compile(r"\b(WARNING|WARN|ERROR|CRITICAL|FATAL)\b|Traceback|Error:|Exception")


def is_problem(line: str) -> bool:
    """A warning or an error line (vLLM's level words, Python tracebacks and exceptions)."""
    return _PROBLEM.search(line) is not None


# uvicorn's access line for a successful poll: `INFO:  127.0.0.1:4711 - "GET /metrics HTTP/1.1"
# 200 OK`. The console itself asks each ready server's /metrics every few seconds.
# A query string is bounded: a hostile line of thousands of `"GET /metrics?` must not cost
# the matcher quadratic time.
_POLL = re.compile(r'"GET /(metrics|health|version)(\?\S{0,256})? HTTP/[\d.]{1,8}" 200\b')


def is_poll(line: str) -> bool:
    """A server's note that it answered a /metrics, /health or /version poll."""
    return "GET /" in line and _POLL.search(line) is not None


class BufferedLog(Log):
    """`Log` fed through a buffer; `problems_only` and `search` filter what is shown."""

    problems_only: var[bool] = var(False)
    search: var[str] = var("")

    def __init__(self, *, max_lines: int = MAX_LINES, id: str | None = None) -> None:
        super().__init__(max_lines=max_lines, auto_scroll=True, id=id)
        self._all: deque[str] = deque(maxlen=max_lines)
        self._pending: list[str] = []
        self._fold_width = 0
        self._clock: Timer | None = None
        self._stale = False  # lines came while hidden: the view shows less than it keeps

    def on_mount(self) -> None:
        # The flush clock runs only while lines wait: a quiet log (or one of many servers'
        # hidden panes) costs no wake-ups. `feed` resumes it, an empty flush pauses it.
        self._clock = self.set_interval(FLUSH_INTERVAL, self.flush, name="log-flush", pause=True)
        if self._pending:
            self._clock.resume()

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
        clock = self._clock
        if self._pending and clock is not None:
            clock.resume()

    def flush(self) -> None:
        if not self._pending:
            if self._clock is not None:
                self._clock.pause()
            return
        batch, self._pending = self._pending, []
        self._all.extend(batch)
        if self._stale or not is_shown(self):
            # The pane of another server (or another tab): kept, and drawn when shown.
            self._stale = True
            return
        filtered = self.problems_only or self.search
        shown = [line for line in batch if self._shows(line)] if filtered else batch
        if shown:
            shown = shown[-self.max_lines :] if self.max_lines else shown
            self.write_lines(fold([visible(line) for line in shown], self._fold_width))

    def on_show(self) -> None:
        if self._stale:
            self._rewrite()

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
        self._stale = False
        self.clear()
        shown = [visible(line) for line in self._all if self._shows(line)]
        self.write_lines(fold(shown, self._fold_width))

    def on_resize(self) -> None:
        # as if the vertical scrollbar were there: it comes with the rows, without a Resize
        width = self.content_region.width - self.styles.scrollbar_size_vertical
        if width != self._fold_width:
            self._fold_width = width
            self._rewrite()

    def watch_problems_only(self) -> None:
        self.flush()
        self._rewrite()

    def watch_search(self) -> None:
        self.flush()
        self._rewrite()


def fold(lines: list[str], width: int) -> list[str]:
    """`lines` with each one longer than `width` cut into rows of at most `width`, at the last
    space of a row's second half when there is one (else mid-word), the continuation rows
    indented (`INDENT`). Unchanged when `width` is under MIN_FOLD_WIDTH."""
    if width < MIN_FOLD_WIDTH or all(len(line) <= width for line in lines):
        return lines
    folded: list[str] = []
    for line in lines:
        room, lead = width, ""
        while len(line) > room:
            cut = line.rfind(" ", room // 2, room + 1)
            if cut > 0:
                folded.append(lead + line[:cut])
                line = line[cut + 1 :]
            else:
                folded.append(lead + line[:room])
                line = line[room:]
            room, lead = width - len(INDENT), INDENT
        folded.append(lead + line)
    return folded
