"""First paint of the console in a browser, beside its first frame in a terminal.

`vllm-console web` is started once, listing a few model folders; headless Chromium (Debian's
`chromium` and `chromium-driver`, through Selenium) opens it with its token once (the cookie
is set), then, run after run, opens the page afresh: the figure is the page's
`performance.now()` (milliseconds since navigation started) two animation frames after the
first model's name arrived on the websocket, so xterm has drawn it. It includes what a
terminal start does (a new console process: interpreter, imports, first frame, the first
listing) plus the page, textual.js and the websocket. Between runs the page is left and the
previous console's end awaited, as a reload would.

Beside it, the terminal console on the same machine, in a fresh 120x40 pty: spawn to the
same name drawn, and bench_first_frame.py's spawn to the first frame (before the listing).

    .venv/bin/python bench/bench_web_first_paint.py [--runs 7] [--models 20]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tui"), str(ROOT), str(ROOT / "bench")]

from tests.fakes.net import free_port  # noqa: E402
from tests.web.chromium import Chromium, chromium_missing  # noqa: E402

from bench_first_frame import first_frame_seconds, make_models  # noqa: E402
from vllm_console.web.access import COOKIE_NAME, cookie_value  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
CONSOLE = [sys.executable, "-m", "vllm_console"]  # this checkout's (PYTHONPATH below)
WATCHED = "bench-model-00"
ESCAPES = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def wait_free(port: int, timeout: float = 30.0) -> None:
    """Until no browser session holds the console (the page answers 200, not 409)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/", headers={"Cookie": f"{COOKIE_NAME}={cookie_value(TOKEN)}"}
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                if answer.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise
        time.sleep(0.05)
    raise RuntimeError("the previous browser session never ended")


def browser_runs(env: dict[str, str], runs: int) -> list[float]:
    port = free_port()
    web = subprocess.Popen(
        [*CONSOLE, "web", "--port", str(port)],
        env={**env, "VLLM_CONSOLE_WEB_TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    browser = Chromium(watched=WATCHED)
    try:
        assert web.stdout is not None
        web.stdout.readline()  # the address: it listens
        browser.open(f"http://127.0.0.1:{port}/?token={TOKEN}")  # warm-up; sets the cookie
        browser.first_paint_ms()
        times = []
        for _ in range(runs):
            browser.open("about:blank")
            wait_free(port)
            browser.open(f"http://127.0.0.1:{port}/")
            times.append(browser.first_paint_ms() / 1000)
        browser.open("about:blank")
        wait_free(port)
        return times
    finally:
        browser.close()
        web.send_signal(signal.SIGINT)
        web.wait(60)


def terminal_runs(env: dict[str, str], models: Path, marker: Path, runs: int) -> list[float]:
    argv = [*CONSOLE, "--model-dirs", str(models)]
    env = {**env, "VLLM_CONSOLE_EXIT_AFTER_FIRST_FRAME": str(marker), "TERM": "xterm-256color"}
    first_frame_seconds(argv, env, marker)  # warm-up
    return [first_frame_seconds(argv, env, marker)[0] for _ in range(runs)]


def terminal_list_seconds(env: dict[str, str], models: Path) -> float:
    """Spawn to the first model's name drawn, in a fresh 120x40 pty."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    started = time.time()
    process = subprocess.Popen(
        [*CONSOLE, "--model-dirs", str(models)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**env, "TERM": "xterm-256color"},
        start_new_session=True,
    )
    os.close(slave)
    seen = ""
    try:
        while WATCHED not in seen:
            if not select.select([master], [], [], 30)[0]:
                raise RuntimeError("the terminal console never listed the models")
            seen += ESCAPES.sub("", os.read(master, 65536).decode("utf-8", "replace"))
        return time.time() - started
    finally:
        process.kill()
        process.wait()
        os.close(master)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each (default 7)")
    parser.add_argument("--models", type=int, default=20, help="model folders to list")
    args = parser.parse_args(argv)
    if (missing := chromium_missing()) is not None:
        print(f"bench_web_first_paint: {missing}", file=sys.stderr)
        return 2
    import vllm_console

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(vllm_console.__file__).parent)],
        check=True,
    )
    load_before = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        root = Path(tmp)
        home, models = root / "home", root / "models"
        home.mkdir()
        make_models(models, args.models)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "VLLM_"))}
        env.update(
            HOME=str(home),
            VLLM_CONSOLE_MODEL_DIRS=str(models),
            PYTHONPATH=os.pathsep.join([str(ROOT / "tui"), env.get("PYTHONPATH", "")]),
        )
        web = browser_runs(env, args.runs)
        terminal = terminal_runs(env, models, root / "first-frame", args.runs)
        listed = [terminal_list_seconds(env, models) for _ in range(args.runs)]
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{args.runs} runs each, {args.models} model folders, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs; load average before: {load_before}, after: {load}"
    )
    print("  browser  " + " ".join(f"{v * 1000:4.0f}" for v in web) + " ms")
    print("  terminal " + " ".join(f"{v * 1000:4.0f}" for v in terminal) + " ms (first frame)")
    print("  terminal " + " ".join(f"{v * 1000:4.0f}" for v in listed) + " ms (model list)")
    print()
    header = f"{'measure':<58} | {'median':>9}"
    print(header)
    print("-" * len(header))
    rows = (
        ("browser: navigation start to the model list drawn", web),
        ("terminal: spawn to the model list drawn", listed),
        ("terminal: spawn to the first frame (bench_first_frame)", terminal),
    )
    for label, values in rows:
        print(f"{label:<58} | {statistics.median(values) * 1000:>6.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
