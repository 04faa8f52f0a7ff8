"""The chat pane fed 1,000 tokens/s: event-loop lag, and how soon the last token is shown.

The OpenAI-compatible stand-in (tests/fakes/fake_openai.py) runs in its own process, paced to
`--rate` content chunks per second on an absolute schedule (a late chunk is followed by the
next at once, as a server that keeps generating would), for `--seconds`; every `--paragraph`
tokens it sends a paragraph break, as real answers have. It reports on stdout when it wrote
the last content chunk (`time.monotonic()`, the same clock in both processes on Linux).

Two consumers, each in a fresh process and headless 100x30 host app (so that one run's heap
does not slow the next one's garbage collections), alternating run by run:
  ChatPane          the real pane: its worker, `stream_chat`, batches into `Markdown.get_stream()`
  append/token      reference: the same stream, `await markdown.append(token)` per token
While an answer streams, a loop callback scheduled every 10 ms records how late it runs (the
event-loop lag). "Caught up" is the time from the server writing the last content chunk to
the answer being complete in the Markdown document (for the pane: its `AnswerFinished`, sent
once the stream's last append has landed).

    .venv/bin/python bench/bench_chat_pane.py [--rate 1000] [--seconds 5] [--runs 3]

Targets (from the issue), for ChatPane: caught up <= 100 ms, p99 lag <= 100 ms. Exit status 1
when missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL = "fake-model"
TARGET_CAUGHT_UP_MS = 100.0
TARGET_P99_LAG_MS = 100.0
LAG_PERIOD_S = 0.01
CONSUMERS = ("ChatPane", "append/token")


# --- the server, in its own process -------------------------------------------------------


def serve_main(rate: float, tokens: int, paragraph: int) -> int:
    """Run the stand-in, paced; print its port, then `sent T` after each answer."""
    sys.path.insert(0, str(ROOT))
    from tests.fakes import fake_openai as fo

    local = threading.local()  # one connection per thread: per-stream pacing and stamps

    class Pacer:
        """`time` for the fake: `sleep` keeps an absolute schedule, the rest is `time`'s."""

        def sleep(self, seconds: float) -> None:
            due = (getattr(local, "due", None) or time.monotonic()) + seconds
            local.due = due
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)

        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

    send, stream = fo.Handler._send, fo.Handler._stream

    def timed_send(self: Any, data: bytes, *, crlf: bool = False) -> None:
        send(self, data, crlf=crlf)
        if b'"content"' in data:
            local.last = time.monotonic()

    def timed_stream(self: Any, fake: Any, req: Any, mode: str) -> bool:
        local.due = local.last = None
        try:
            return bool(stream(self, fake, req, mode))
        finally:
            print(f"sent {local.last!r}", flush=True)

    def word(i: int) -> str:
        return "\n\n" if paragraph and i % paragraph == paragraph - 1 else f"w{i} "

    fo.time = Pacer()  # type: ignore[attr-defined,assignment]
    fo.word = word
    fo.Handler._send = timed_send  # type: ignore[method-assign]
    fo.Handler._stream = timed_stream  # type: ignore[method-assign]
    fake = fo.FakeOpenAI(models=(MODEL,), tokens=tokens)
    fake.token_delay = 1.0 / rate
    print(fake.port, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        fake._server.serve_forever()
    return 0


class Server:
    """The server process, and the `sent` stamps it prints, read by a thread."""

    def __init__(self, rate: float, tokens: int, paragraph: int) -> None:
        argv = [sys.executable, __file__, "--serve", "--rate", str(rate)]
        argv += ["--tokens", str(tokens), "--paragraph", str(paragraph)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        self.base_url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}/v1"
        self.stamps: queue.Queue[float] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("sent "):
                value = line.split()[1]
                self.stamps.put(float("nan") if value == "None" else float(value))

    def last_sent(self) -> float:
        return self.stamps.get(timeout=30)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# --- the consumers, in this process -------------------------------------------------------


class LagMonitor:
    """A loop callback every LAG_PERIOD_S that records how late it ran."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + LAG_PERIOD_S

        def tick(due: float) -> None:
            now = loop.time()
            self.samples.append(max(0.0, now - due))
            self._handle = loop.call_at(now + LAG_PERIOD_S, tick, now + LAG_PERIOD_S)

        self._handle = loop.call_at(due, tick, due)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


@dataclasses.dataclass
class Run:
    consumer: str
    tokens: int
    received_rate: float | None
    p99_lag_ms: float
    max_lag_ms: float
    caught_up_ms: float  # in the consumer's process: the time.monotonic() it was done


def _p99(samples: list[float]) -> float:
    if len(samples) < 2:
        return samples[0] if samples else 0.0
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


async def run_pane(base_url: str) -> Run:
    from textual.app import App, ComposeResult

    from vllm_console.widgets.chat.pane import ChatPane, EndpointConfig
    from vllm_console.widgets.chat.parts import MessageView

    class Host(App[None]):
        finished_at: float | None = None
        turn: Any = None

        def compose(self) -> ComposeResult:
            yield ChatPane(EndpointConfig(base_url, None, MODEL))

        def on_chat_pane_answer_finished(self, event: ChatPane.AnswerFinished) -> None:
            self.finished_at, self.turn = time.monotonic(), event.turn

    app = Host()
    async with app.run_test(headless=True, size=(100, 30)) as pilot:
        pane = app.query_one(ChatPane)
        while pane.endpoint_status is None:
            await pilot.pause(0.01)
        lag = LagMonitor()
        lag.start()
        pane.send("go")
        while app.finished_at is None:
            await asyncio.sleep(0.005)
        lag.stop()
        shown = pane.query(MessageView).last().markdown.source
        assert shown == app.turn.content, "the document differs from the answer"
        stats = app.turn.stats
        return Run(
            "ChatPane",
            stats.tokens,
            stats.tokens_per_s,
            1000 * _p99(lag.samples),
            1000 * max(lag.samples, default=0.0),
            app.finished_at,
        )


async def run_reference(base_url: str) -> Run:
    from textual.app import App, ComposeResult
    from textual.containers import VerticalScroll
    from textual.widgets import Markdown

    from vllm_console.core.endpoint.client import Delta, Done, make_client, stream_chat

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            with VerticalScroll() as scroll:
                scroll.anchor()
                yield Markdown()

    app = Host()
    async with app.run_test(headless=True, size=(100, 30)):
        markdown = app.query_one(Markdown)
        lag = LagMonitor()
        lag.start()
        done = None
        hi = [{"role": "user", "content": "go"}]
        async with (
            make_client(base_url) as client,
            contextlib.aclosing(stream_chat(client, base_url, None, MODEL, hi)) as events,
        ):
            async for event in events:
                if type(event) is Delta:
                    await markdown.append(event.text)
                elif type(event) is Done:
                    done = event
        finished_at = time.monotonic()
        lag.stop()
        assert done is not None and markdown.source == done.text
        return Run(
            "append/token",
            done.stats.tokens,
            done.stats.tokens_per_s,
            1000 * _p99(lag.samples),
            1000 * max(lag.samples, default=0.0),
            finished_at,
        )


RUNNERS = {"ChatPane": run_pane, "append/token": run_reference}


def consumer_main(name: str, base_url: str) -> int:
    """In a consumer subprocess: one measured answer, the result as JSON on stdout."""
    run = asyncio.run(RUNNERS[name](base_url))
    print(json.dumps(dataclasses.asdict(run)))
    return 0


def consume(name: str, server: Server) -> Run:
    argv = [sys.executable, __file__, "--consumer", name, "--base-url", server.base_url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stdout}{done.stderr}")
    run = Run(**json.loads(done.stdout.strip().splitlines()[-1]))
    run.caught_up_ms = 1000 * (run.caught_up_ms - server.last_sent())
    return run


# --- the report ---------------------------------------------------------------------------


def report(runs: list[Run], args: argparse.Namespace) -> bool:
    header = (
        f"{'consumer':<14} {'tokens':>6} {'recv tok/s':>10} {'p99 lag ms':>10} "
        f"{'max lag ms':>10} {'caught up ms':>12} {'target':>16} {'met?':>5}"
    )
    print()
    print(header)
    print("-" * len(header))
    met = True
    for consumer in CONSUMERS:
        mine = [r for r in runs if r.consumer == consumer]
        if not mine:
            continue
        rate = [r.received_rate for r in mine if r.received_rate]
        p99 = statistics.median(r.p99_lag_ms for r in mine)
        caught = statistics.median(r.caught_up_ms for r in mine)
        row = (
            f"{consumer:<14} {mine[0].tokens:>6} "
            f"{statistics.median(rate) if rate else float('nan'):>10.0f} {p99:>10.1f} "
            f"{statistics.median(r.max_lag_ms for r in mine):>10.1f} {caught:>12.1f}"
        )
        if consumer == "ChatPane":
            ok = caught <= TARGET_CAUGHT_UP_MS and p99 <= TARGET_P99_LAG_MS
            met = met and ok
            row += f" {'<= 100 / <= 100':>16} {'yes' if ok else 'NO':>5}"
        else:
            row += f" {'(reference)':>16} {'':>5}"
        print(row)
    text = f"a paragraph break every {args.paragraph} tokens" if args.paragraph else "one paragraph"
    print(
        f"\nfed {args.rate:g} tokens/s for {args.seconds:g} s, {text}; "
        f"median of {args.runs} run(s) each; target columns: caught up / p99 lag"
    )
    return met


def measure(args: argparse.Namespace) -> list[Run]:
    tokens = max(2, round(args.rate * args.seconds))
    server = Server(args.rate, tokens, args.paragraph)
    runs: list[Run] = []
    names = CONSUMERS[:1] if args.no_reference else CONSUMERS
    try:
        for i in range(args.runs):
            for name in names if i % 2 == 0 else names[::-1]:
                result = consume(name, server)
                runs.append(result)
                print(
                    f"  run {i + 1} {result.consumer:<13} p99 lag {result.p99_lag_ms:6.1f} ms"
                    f"  caught up {result.caught_up_ms:8.1f} ms"
                )
    finally:
        server.stop()
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="tokens per second fed")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one answer")
    parser.add_argument("--runs", type=int, default=3, help="answers per consumer (median)")
    parser.add_argument("--paragraph", type=int, default=60, help="tokens per paragraph, 0: one")
    parser.add_argument("--no-reference", action="store_true", help="skip append/token")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--consumer", choices=CONSUMERS, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve_main(args.rate, args.tokens, args.paragraph)
    if args.consumer:
        return consumer_main(args.consumer, args.base_url)
    runs = measure(args)
    return 0 if report(runs, args) else 1


if __name__ == "__main__":
    sys.exit(main())
