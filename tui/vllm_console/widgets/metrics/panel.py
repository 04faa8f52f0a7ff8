"""The metrics panel: a vLLM server's `/metrics`, read every second or two while it is shown.

An async worker holds one HTTP client and polls; it runs only while the panel is visible
(started on Show, cancelled on Hide), so a hidden tab costs nothing. Each reading is parsed by
`core.metrics` and turned into rates against the one before (tokens per second from counter
deltas, the interval's median time to first token and prefix cache hit rate). A server that is
not vLLM, or not there, is one calm line, and the panel keeps trying. One that stops answering
(stopped, crashed, unplugged) leaves its last reading on show, dimmed, under a line saying
since when: what the figures were just before is often what the user came to see.

Use: `MetricsPanel(base_url, api_key)`; `point_at(base_url, api_key)` repoints it. Each reading
is posted as `MetricsPanel.Updated`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Sparkline, Static
from textual.worker import Worker

from vllm_console.core.endpoint.client import make_client, server_root
from vllm_console.core.endpoint.metrics import MetricsRates, MetricsSnapshot, fetch_metrics, rates
from vllm_console.core.text import visible
from vllm_console.widgets.worker_errors import ReportsWorkerErrors

POLL_INTERVAL_S = 1.5
HISTORY = 80  # readings kept for the sparkline (two minutes at 1.5 s)
BAR_WIDTH = 20
UNKNOWN = "\N{EN DASH}"


def _num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return UNKNOWN if value is None else fmt.format(value)


def _pct(value: float | None) -> str:
    return UNKNOWN if value is None else f"{100 * value:.1f} %"


def _bar(fraction: float | None, style: str) -> Content:
    """A gauge; each run ends with its separator (a run that starts with spaces renders badly
    in SVG screenshots)."""
    full = 0 if fraction is None else round(max(0.0, min(1.0, fraction)) * BAR_WIDTH)
    return Content.assemble(
        ("█" * full, style or "$text-success"),
        ("█" * (BAR_WIDTH - full) + "  ", "$panel-lighten-2"),
    )


def head_line(
    url: str, snapshot: MetricsSnapshot | None, interval: float, kept_since: str | None = None
) -> Content:
    """Where the metrics come from, and whether they come (the URL and the problems quote
    settings and the server: control characters are shown as escapes). `kept_since`: the
    clock time answers stopped, when an earlier reading is still on show."""
    url = visible(url)
    if snapshot is None:
        return Content.styled(f"◌ reading {url}…", "$text-muted")
    if snapshot.empty:
        problem = visible("; ".join(snapshot.problems)) or "no vLLM metrics"
        if kept_since is not None:
            text = (
                f"○ No answer since {kept_since} ({problem}); the last reading is below. "
                f"Trying again every {interval:g} s."
            )
            return Content.styled(text, "$text-warning")
        text = f"○ No vLLM metrics here ({problem}). Trying again every {interval:g} s."
        return Content.styled(text, "$text-muted")
    return Content.assemble(
        ("● vLLM metrics  ", "bold $text-success"), (f"{url} · every {interval:g} s", "$text-muted")
    )


def metrics_table(snapshot: MetricsSnapshot, recent: MetricsRates | None) -> Content:
    """Label and value rows; interval figures first, since-start ones after them."""
    label_style = "$text-muted"
    kv = snapshot.kv_cache_usage
    kv_style = "$text-error" if (kv or 0) > 0.9 else "$text-warning" if (kv or 0) > 0.7 else ""
    window = f"last {recent.interval_s:.1f} s" if recent else "since start"
    ttft_now = recent.ttft_median_s if recent else None
    hit_now = recent.prefix_cache_hit_rate if recent else None
    preempt_now = recent.preemptions if recent else None
    waiting = _num(snapshot.requests_waiting)
    rows: list[tuple[str, Content | str]] = [
        ("Requests", f"{_num(snapshot.requests_running)} running · {waiting} waiting"),
        ("KV cache", Content.assemble(_bar(kv, kv_style), _pct(kv))),
        ("Prompt", f"{_num(recent.prompt_tokens_per_s if recent else None, '{:,.1f}')} tokens/s"),
        (
            "Generation",
            f"{_num(recent.generation_tokens_per_s if recent else None, '{:,.1f}')} tokens/s",
        ),
        (
            "TTFT p50",
            f"{_num(ttft_now, '{:.3f} s')} ({window}) · "
            f"{_num(snapshot.ttft_median_s, '{:.3f} s')} since start",
        ),
        (
            "Preemptions",
            f"{_num(preempt_now)} ({window}) · {_num(snapshot.preemptions)} since start",
        ),
        (
            "Prefix cache",
            f"{_pct(hit_now)} hits ({window}) · {_pct(snapshot.prefix_cache_hit_rate)} since start",
        ),
    ]
    lines = [Content.assemble((f"{label:<14}", label_style), value) for label, value in rows]
    return Content("\n").join(lines)


class MetricsPanel(ReportsWorkerErrors, Vertical):
    """The figures of one vLLM server, refreshed while shown."""

    DEFAULT_CSS = Path(__file__).with_name("panel.tcss").read_text(encoding="utf-8")

    class Updated(Message):
        """A reading: `rates` is None for the first one, or after a gap or restart."""

        def __init__(self, snapshot: MetricsSnapshot, rates: MetricsRates | None) -> None:
            super().__init__()
            self.snapshot = snapshot
            self.rates = rates

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        interval: float = POLL_INTERVAL_S,
        id: str | None = "metrics-panel",
    ) -> None:
        super().__init__(id=id)
        self.base_url = base_url
        self.api_key = api_key
        self.interval = interval
        self.polls = 0  # readings taken: tests check that a hidden panel takes none
        self.snapshot: MetricsSnapshot | None = None
        self.rates: MetricsRates | None = None
        self._last_good: MetricsSnapshot | None = None
        # The last good reading and its rates, kept on show once readings fail, and since when.
        self._kept: tuple[MetricsSnapshot, MetricsRates | None] | None = None
        self._lost_at: str | None = None
        self._history: deque[float] = deque([0.0] * HISTORY, maxlen=HISTORY)
        self._poller: Worker[None] | None = None

    @property
    def url(self) -> str:
        return f"{server_root(self.base_url)}/metrics"

    def compose(self) -> ComposeResult:
        yield Static(head_line(self.url, None, self.interval), id="metrics-head")
        yield Static("", id="metrics-table")
        yield Static("Generation tokens/s", id="metrics-spark-label")
        yield Sparkline(list(self._history), id="metrics-spark")

    def on_mount(self) -> None:
        self._show()

    def on_show(self) -> None:
        self._start()

    def on_hide(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    def point_at(self, base_url: str, api_key: str | None = None) -> None:
        """Read another server's metrics (forgetting this one's)."""
        self.base_url, self.api_key = base_url, api_key
        self.snapshot = self.rates = self._last_good = self._kept = self._lost_at = None
        self._history.extend([0.0] * HISTORY)
        self._show()
        if self._poller is not None:
            self._start()

    def _start(self) -> None:
        self._poller = self._poll(self.base_url, self.api_key)

    @work(exclusive=True, group="metrics-poll", exit_on_error=False)
    async def _poll(self, base_url: str, api_key: str | None) -> None:
        async with make_client(base_url) as client:
            while True:
                snapshot = await fetch_metrics(client, base_url, api_key)
                self.polls += 1
                self.post_message(self.Updated(snapshot, self._rates(snapshot)))
                await asyncio.sleep(self.interval)

    def _rates(self, snapshot: MetricsSnapshot) -> MetricsRates | None:
        earlier = self._last_good
        if snapshot.empty:
            self._last_good = None  # the next good reading starts afresh
            return None
        self._last_good = snapshot
        return rates(earlier, snapshot) if earlier is not None else None

    @on(Updated)
    def _updated(self, event: Updated) -> None:
        # not stopped: the app may show a figure in its header too
        self.snapshot, self.rates = event.snapshot, event.rates
        if not event.snapshot.empty:
            self._kept, self._lost_at = (event.snapshot, event.rates), None
        elif self._kept is not None and self._lost_at is None:
            self._lost_at = time.strftime("%H:%M:%S")
        if event.rates is not None and event.rates.generation_tokens_per_s is not None:
            self._history.append(event.rates.generation_tokens_per_s)
        self._show()

    def _show(self) -> None:
        stale = self._lost_at is not None
        head = head_line(self.url, self.snapshot, self.interval, self._lost_at)
        self.query_one("#metrics-head", Static).update(head)
        self.set_class(stale, "-stale")
        for name in ("#metrics-table", "#metrics-spark-label", "#metrics-spark"):
            self.query_one(name).display = self._kept is not None
        if self._kept is None:
            return
        snapshot, recent = self._kept
        self.query_one("#metrics-table", Static).update(metrics_table(snapshot, recent))
        peak = max(self._history)
        self.query_one("#metrics-spark-label", Static).update(
            Content.assemble(
                ("Generation tokens/s  ", "bold"),
                (f"last {HISTORY * self.interval:.0f} s · peak {peak:,.1f}", "$text-muted"),
            )
        )
        self.query_one("#metrics-spark", Sparkline).data = list(self._history)
