"""The console against a real vLLM (CPU build) on a tiny model.

1. Pilot drives the App in this process, one launch for the whole journey: select the model,
   launch, ready, milestones in the log pane; read the metrics panel; chat from the chat pane
   (the answer streams into its Markdown, the status line gets its statistics); the metrics
   panel's generation counter and rate rise by that answer; bench/bench_ttft_real.py runs a
   few rounds against the same server; stop; no process of the server's session survives
   and the port is free.
2. The console runs as a program in a pseudo-terminal, launches from its keys, and is killed
   with SIGKILL while the server runs: the server's whole session must be gone within 20 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from tests.e2e.conftest import TINY_ID
from tests.fakes.net import free_port
from tests.widgets.console_helpers import wait_until
from vllm_console.app import VllmConsoleApp
from vllm_console.config import load_settings
from vllm_console.core.catalog.entry import Source
from vllm_console.core.endpoint.client import ChatStats
from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.serve.proctable import port_holders, port_is_free, session_pids
from vllm_console.core.serve.spec import LaunchSpec, save_spec
from vllm_console.core.text import visible_lines
from vllm_console.screens.launch import LaunchScreen
from vllm_console.widgets.chat.pane import ChatPane
from vllm_console.widgets.chat.parts import ChatLog, MessageView
from vllm_console.widgets.metrics.panel import MetricsPanel
from vllm_console.widgets.server.log_view import BufferedLog

pytestmark = pytest.mark.e2e
READY_LIMIT = 180.0
BENCH_TTFT = Path(__file__).resolve().parents[2] / "bench" / "bench_ttft_real.py"


def tiny_key(real_env: dict[str, str]) -> tuple[str, Path]:
    """The catalog key and snapshot path of the tiny model in real_env's HF cache."""
    repo = Path(real_env["HF_HOME"]) / "hub" / ("models--" + TINY_ID.replace("/", "--"))
    snapshot = repo / "snapshots" / hashlib.sha1(TINY_ID.encode()).hexdigest()
    return f"{Source.HF_CACHE}:{snapshot}", snapshot


def save_tiny_spec(real_env: dict[str, str], port: int, max_model_len: int = 512) -> None:
    """What a user would have chosen last time: small, eager, bf16 (prefills the dialog)."""
    key, snapshot = tiny_key(real_env)
    spec = LaunchSpec(
        str(snapshot),
        served_model_name=TINY_ID,
        port=port,
        max_model_len=max_model_len,
        dtype="bfloat16",
        enforce_eager=True,
    )
    save_spec(Path(real_env["XDG_CONFIG_HOME"]) / "vllm-console" / "launch-specs.json", key, spec)


async def test_pilot_launch_chat_metrics_and_clean_stop(
    real_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith(("VLLM_", "HF_"))]:
        monkeypatch.delenv(key)
    for key, value in real_env.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    save_tiny_spec(real_env, port, max_model_len=CHAT_CONTEXT)
    cwd = Path(real_env["HOME"]).parent / "cwd"
    settings = load_settings(environ=dict(os.environ), cwd=cwd, home=Path(real_env["HOME"]))
    app = VllmConsoleApp(settings)
    async with app.run_test(size=(140, 44)) as pilot:
        await wait_until(pilot, lambda: app.catalog_entries, 30, "the tiny model")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen), 30, "the dialog")
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        go = screen.query_one("#launch-go")
        await wait_until(pilot, lambda: not go.disabled, 60, "vLLM to be found")
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: app.server_state.phase is Phase.READY, READY_LIMIT, "ready")
        await pilot.pause(0.3)
        lines = app.query_one("#server-log", BufferedLog).all_lines
        for milestone in ("Loading weights took", "Starting vLLM server", "startup complete"):
            assert any(milestone in line for line in lines), milestone
        phases = [name for name, _ in app.server_state.phase_times]
        assert phases[:2] == ["starting", "loading weights"]
        sid = port_holders(port)[0].session
        reply = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10)
        assert reply.json()["data"][0]["id"] == TINY_ID
        before = await generation_counter(pilot, app)
        with own_cores(session_pids(sid)):
            stats = await chat_from_the_pane(pilot, app)
        await metrics_rise(pilot, app, before, stats.tokens)
        await bench_ttft_runs(f"http://127.0.0.1:{port}/v1")
        await pilot.press("escape")  # out of the chat prompt: keys are commands again
        await pilot.press("s")
        await wait_until(pilot, lambda: app.server_state.phase is Phase.STOPPED, 60, "stopped")
    assert session_pids(sid) == []
    assert port_is_free("127.0.0.1", port)


@contextlib.contextmanager
def own_cores(server: list[int]) -> Iterator[None]:
    """The server's threads on the first CPU this process may use, this process's on the rest.

    The CPU build computes on the CPUs the console runs on; on a 2-core machine a generating
    vLLM (its worker, and its engine core polling for the worker) keeps this process from
    running for seconds at a time, so the answer sits unread in the socket and then arrives
    all at once (seen: the server's packets stopped by a full receive window for 2.6 s). A
    GPU server leaves the console its CPU; so does this split. Threads started later inherit
    it from the threads that start them.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        yield
        return
    for pid in server:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):  # a thread that has just ended
                os.sched_setaffinity(int(tid), {allowed[0]})
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(tid), set(allowed[1:]))
    try:
        yield
    finally:
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), set(allowed))


async def generation_counter(pilot: Pilot[None], app: VllmConsoleApp) -> float:
    """`m` shows the metrics panel; its first reading's generation token counter."""
    await pilot.press("escape")
    await pilot.press("m")
    panel = app.metrics
    await wait_until(pilot, lambda: good_reading(panel), 30, "a metrics reading")
    assert panel.snapshot is not None
    counter = panel.snapshot.generation_tokens
    assert counter is not None, "no vllm:generation_tokens_total in /metrics"
    return counter


def good_reading(panel: MetricsPanel) -> bool:
    return panel.snapshot is not None and not panel.snapshot.empty


async def chat_from_the_pane(pilot: Pilot[None], app: VllmConsoleApp) -> ChatStats:
    """`c`, greedy and 1,000 tokens in the settings, a prompt, enter: the answer streams in."""
    await pilot.press("escape")
    await pilot.press("c")
    chat = app.chat
    await wait_until(pilot, lambda: chat_ready(chat), 30, "the chat to point at the server")
    assert chat.config.source == "local server"
    await pilot.press("ctrl+t")  # the settings open on the temperature field
    await type_text(pilot, "0")
    await pilot.press("tab", "tab")  # top_p left at the server's default
    await type_text(pilot, str(CHAT_MAX_TOKENS))
    await pilot.press("ctrl+t")  # folded again; the prompt has the focus
    assert chat.params.temperature == 0 and chat.params.max_tokens == CHAT_MAX_TOKENS
    await type_text(pilot, CHAT_PROMPT)
    watcher = AnswerWatcher(chat)
    watcher.start()
    try:
        await pilot.press("enter")
        await wait_until(pilot, watcher.done.is_set, 120, "the answer")
    finally:
        watcher.stop.set()
        watcher.join()
    await wait_until(pilot, lambda: not chat.busy, 10, "the answer to end")
    await pilot.pause(0.1)
    turn = chat.turns[-1]
    assert turn.role == "assistant" and turn.stats is not None, chat.turns
    stats = turn.stats
    answer = chat.query(MessageView).last().source
    # The pane shows the answer with control characters made visible (the tiny model's
    # random tokens include some); the turn keeps the true text.
    assert answer and answer == visible_lines(turn.content)
    # Streamed: the Markdown held at least two different partial texts before the end.
    seen = watcher.seen
    partial = sorted({size for size, _ in seen if 0 < size < len(answer)})
    assert len(partial) >= 2, f"the answer did not grow while streaming: {seen}"
    assert any(status.startswith("● streaming · ") for _, status in seen), seen
    assert stats.ok, stats
    assert stats.ttft_s is not None and 0 < stats.ttft_s < stats.total_s
    assert stats.tokens_per_s is not None and stats.tokens_per_s > 0
    assert stats.prompt_tokens is not None and stats.prompt_tokens > 0
    assert stats.completion_tokens == stats.tokens and 0 < stats.tokens <= CHAT_MAX_TOKENS
    assert stats.finish_reason in ("stop", "length")
    line = STATUS.search(status_text(chat))
    assert line is not None, status_text(chat)
    assert float(line["ttft"]) == pytest.approx(stats.ttft_s, abs=0.0006)
    assert float(line["rate"]) == pytest.approx(stats.tokens_per_s, abs=0.06)
    assert int(line["tokens_in"]) == stats.prompt_tokens
    assert int(line["tokens_out"]) == stats.tokens
    assert line["finish"] == stats.finish_reason
    return stats


STATUS = re.compile(
    r"^● ttft (?P<ttft>\d+\.\d{3}) s · (?P<rate>\d+\.\d) tok/s · in (?P<tokens_in>\d+)"
    r" · out (?P<tokens_out>\d+) · \d+\.\d\d s · .*finish (?P<finish>stop|length)"
)
# Long enough (several seconds) to be seen growing many times.
CHAT_MAX_TOKENS = 1000
CHAT_CONTEXT = 2048
# Greedy, the tiny model answers this one with short words between spaces; most prompts get
# one unbroken run of thousands of characters, or mostly partial UTF-8 (which arrives as
# nothing). Ordinary text is what a streaming test wants.
CHAT_PROMPT = "hello server"


class AnswerWatcher(threading.Thread):
    """Every 10 ms until the answer is recorded: its Markdown's size and the status line.

    A thread, not a task: on a 2-core machine where vLLM is generating, laying out the growing
    answer can hold the event loop for a second or more at a time, and Pilot's key presses
    wait for the loop to go idle. Between those steps the thread still gets the interpreter;
    it only reads attributes (no call into Textual), so it sees every state the answer passes
    through on its way to the screen.
    """

    def __init__(self, chat: ChatPane) -> None:
        super().__init__(daemon=True)
        self.chat = chat
        self.log = chat.query_one(ChatLog)
        self.status = chat.query_one("#chat-status", Static)
        self.seen: list[tuple[int, str]] = []
        self.done = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            turns = self.chat.turns
            if turns and turns[-1].role == "assistant":
                self.done.set()
                return
            views = [node for node in list(self.log.children) if isinstance(node, MessageView)]
            if views and views[-1].role == "assistant":
                self.seen.append((len(views[-1].source), str(self.status.content)))
            time.sleep(0.01)


def chat_ready(chat: ChatPane) -> bool:
    status = chat.endpoint_status
    return chat.config.model == TINY_ID and status is not None and status.ok and status.is_vllm


def status_text(chat: ChatPane) -> str:
    return str(chat.query_one("#chat-status", Static).render())


async def type_text(pilot: Pilot[None], text: str) -> None:
    await pilot.press(*("space" if char == " " else char for char in text))


async def metrics_rise(pilot: Pilot[None], app: VllmConsoleApp, before: float, tokens: int) -> None:
    """Back on the metrics panel: the counter rose by the answer's tokens; the rate shows it."""
    await pilot.press("escape")
    await pilot.press("m")
    panel = app.metrics

    def counted() -> bool:
        snapshot = panel.snapshot
        return snapshot is not None and (snapshot.generation_tokens or 0) >= before + tokens

    await wait_until(pilot, counted, 30, "the generation counter to count the answer")
    assert panel.snapshot is not None and panel.snapshot.generation_tokens == before + tokens
    # The first reading after the chat is compared with the last one before it.
    rates = panel.rates
    assert rates is not None and rates.generation_tokens_per_s is not None
    assert rates.generation_tokens_per_s > 0, rates
    table = str(panel.query_one("#metrics-table", Static).render())
    shown = re.search(r"Generation\s+([\d,]+\.\d) tokens/s", table)
    assert shown is not None, table
    assert float(shown[1].replace(",", "")) == pytest.approx(
        rates.generation_tokens_per_s, abs=0.06
    )
    spark = str(panel.query_one("#metrics-spark-label", Static).render())
    peak = re.search(r"peak ([\d,]+\.\d)", spark)
    assert peak is not None and float(peak[1].replace(",", "")) > 0, spark


async def bench_ttft_runs(base_url: str) -> None:
    """bench/bench_ttft_real.py against this server, three runs, so that it cannot rot."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BENCH_TTFT),
        "--base-url",
        base_url,
        "--runs",
        "3",
        "--warmup",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode in (0, 1), text  # 1: target missed on a busy machine
    row = re.search(r"\| median TTFT \| ([\d.]+) ms \| ([\d.]+) ms \|", text)
    assert row is not None, text
    assert float(row[1]) > 0 and float(row[2]) > 0, text
    verdict = re.search(r"\| TTFT difference, median of the rounds \|.*\| (yes|NO) \|", text)
    assert verdict is not None and (verdict[1] == "yes") == (proc.returncode == 0), text
    assert "answers: identical on every run; completion tokens: [16]" in text, text


def read_screen(fd: int, seconds: float) -> bytes:
    """What the console painted in the next `seconds` (the pty must be drained anyway)."""
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    return out


def test_sigkill_of_the_console_takes_the_server_down(real_env: dict[str, str]) -> None:
    port = free_port()
    save_tiny_spec(real_env, port)
    env = {**real_env, "TERM": "xterm-256color", "COLUMNS": "140", "LINES": "44"}
    main, child = pty.openpty()
    os.set_inheritable(child, True)
    console = subprocess.Popen(
        [sys.executable, "-m", "vllm_console"],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        cwd=Path(real_env["HOME"]).parent / "cwd",
        start_new_session=True,
    )
    os.close(child)
    sid = None
    try:
        seen = read_screen(main, 8)
        assert b"tiny-llama" in seen, "the tiny model is not listed"
        if b"Servers left from earlier runs" in seen:  # other vLLMs on this machine
            os.write(main, b"\x1b")  # not ours to judge here: close the offer
            read_screen(main, 1)
        os.write(main, b"\r")  # enter: the launch dialog
        read_screen(main, 6)  # vLLM is looked for meanwhile
        os.write(main, b"\x0c")  # ctrl+l: launch
        deadline = time.monotonic() + READY_LIMIT
        while time.monotonic() < deadline:
            read_screen(main, 1)
            holders = port_holders(port)
            if holders and _healthy(port):
                sid = holders[0].session
                break
        assert sid is not None, "not ready in time"
        engine = [p for p in session_pids(sid) if _comm(p).startswith("VLLM::")]
        assert engine, "vLLM's renamed engine process not found"
        console.kill()
        console.wait(timeout=10)
        deadline = time.monotonic() + 20
        while session_pids(sid) and time.monotonic() < deadline:
            read_screen(main, 0.2)
        left = session_pids(sid)
    finally:
        if console.poll() is None:
            console.kill()
        os.close(main)
    if left:
        os.killpg(sid, signal.SIGKILL)
    assert left == [], f"left alive 20 s after the console's SIGKILL: {left}"
    assert port_is_free("127.0.0.1", port)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return ""
