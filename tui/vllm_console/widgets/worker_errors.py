"""A worker that fails is said, not lost: every worker-running node reports it to the App.

The console's workers run with `exit_on_error=False` (one failing must not take the console
down), and Textual then only logs the exception. Its `Worker.StateChanged` goes to the node
that ran the worker and does not bubble (`bubble=False`), so the App cannot see another
node's workers fail. `ReportsWorkerErrors` is the bridge: a node that runs workers (a widget,
a screen, the App itself) inherits it, and each of its workers that ends in ERROR becomes a
`WorkerFailed` message, which bubbles to the App's one handler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message
from textual.worker import Worker, WorkerState

from vllm_console.core.text import visible

if TYPE_CHECKING:
    from textual.dom import DOMNode

    NodeBase = DOMNode
else:
    # A plain class at run time: Textual inherits CSS along the first base that is a DOMNode,
    # so a DOMNode mixin listed first would cut a widget off from its real base's styles.
    NodeBase = object


class WorkerFailed(Message):
    """A worker ended in ERROR; `worker.error` is the exception it raised."""

    def __init__(self, worker: Worker[object]) -> None:
        super().__init__()
        self.worker = worker


class ReportsWorkerErrors(NodeBase):
    """Mixin for a node (widget, screen, App) that runs workers."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.post_message(WorkerFailed(event.worker))


def failure_line(worker: Worker[object]) -> str:
    """One line for a notification: which worker, and the first line of its error."""
    error = worker.error
    if error is None:
        detail = "no error recorded"
    else:
        lines = str(error).strip().splitlines()
        detail = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    who = worker.group if worker.name in ("", worker.group) else f"{worker.group} ({worker.name})"
    return visible(f"{who} failed: {detail}")  # errors quote paths and servers
