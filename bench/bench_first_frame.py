"""Time to first frame: vllm-console against a minimal Textual app, in a real pseudo-terminal.

Each app is started in a fresh pty (120x40) and writes `time.time()` to a marker file right
after its first screen refresh, then exits. The figure is marker time minus spawn time: the
interpreter start, imports, composing, the first paint. The two apps alternate run by run,
so drifts in machine load hit both alike; medians are compared.

    .venv/bin/python bench/bench_first_frame.py [--runs 9]

Target (from the issue): vllm-console's first frame within 1.5x the minimal app's.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Sequence
from pathlib import Path

TARGET_RATIO = 1.5
COLUMNS, LINES = 120, 40
VENV_BIN = Path(sys.executable).parent

MINIMAL_APP = """
import os, time
from textual.app import App
from textual.widgets import Static

class Minimal(App):
    def compose(self):
        yield Static("hello")

    def on_mount(self):
        self.call_after_refresh(self.first_frame)

    def first_frame(self):
        with open(os.environ["VLLM_CONSOLE_EXIT_AFTER_FIRST_FRAME"], "w") as f:
            f.write(f"{time.time()}\\n")
        self.exit()

Minimal().run()
"""


def _drain(fd: int) -> None:
    """Read what the app paints, as a terminal would, so it never blocks on a full pty."""
    while True:
        try:
            if not os.read(fd, 65536):
                return
        except OSError:
            return


def first_frame_seconds(argv: list[str], env: dict[str, str], marker: Path) -> tuple[float, float]:
    """(wall seconds from spawn to first frame, CPU seconds of the whole process)."""
    marker.unlink(missing_ok=True)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    reader = threading.Thread(target=_drain, args=(master,), daemon=True)
    reader.start()
    started = time.time()
    process = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    os.close(slave)
    timer = threading.Timer(30, process.kill)
    timer.start()
    try:
        # wait4, not wait: its rusage gives the CPU time, which other load barely disturbs.
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    finally:
        timer.cancel()
        os.close(master)
    if not marker.is_file():
        raise RuntimeError(f"{argv[0]} exited ({process.returncode}) without a first frame")
    return float(marker.read_text().strip()) - started, usage.ru_utime + usage.ru_stime


def make_models(root: Path, count: int) -> None:
    """A few small model folders, so the console has something to list after its frame."""
    for index in range(count):
        folder = root / f"bench-model-{index:02}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(
            '{"architectures": ["LlamaForCausalLM"], "model_type": "llama", '
            '"num_hidden_layers": 2, "max_position_embeddings": 4096}'
        )
        header = b'{"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}'
        (folder / "model.safetensors").write_bytes(
            struct.pack("<Q", len(header)) + header + bytes(8)
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="runs per app (default 9)")
    parser.add_argument("--models", type=int, default=20, help="model folders to list")
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="do not compile vllm_console's bytecode first (an editable install under "
        "PYTHONDONTWRITEBYTECODE=1 then recompiles the package at every start)",
    )
    args = parser.parse_args(argv)
    if not args.no_compile:
        # As a regular install does; textual's own bytecode is already there (site-packages).
        import vllm_console

        package = str(Path(vllm_console.__file__).parent)
        subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True)

    load_before = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="bench-first-frame-") as tmp:
        root = Path(tmp)
        home, models = root / "home", root / "models"
        home.mkdir()
        make_models(models, args.models)
        marker = root / "first-frame"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "VLLM_"))}
        env.update(
            HOME=str(home),
            TERM="xterm-256color",
            COLUMNS=str(COLUMNS),
            LINES=str(LINES),
            VLLM_CONSOLE_EXIT_AFTER_FIRST_FRAME=str(marker),
        )
        minimal_script = root / "minimal_app.py"
        minimal_script.write_text(MINIMAL_APP)
        apps = {
            "minimal Textual app": [sys.executable, str(minimal_script)],
            "vllm-console": [str(VENV_BIN / "vllm-console"), "--model-dirs", str(models)],
        }
        walls: dict[str, list[float]] = {name: [] for name in apps}
        cpus: dict[str, list[float]] = {name: [] for name in apps}
        for argv in apps.values():  # one warm-up each: page cache, .pyc files
            first_frame_seconds(argv, env, marker)
        for _ in range(args.runs):
            for name, argv in apps.items():
                wall, cpu = first_frame_seconds(argv, env, marker)
                walls[name].append(wall)
                cpus[name].append(cpu)

    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"first frame in a {COLUMNS}x{LINES} pty, {args.runs} runs each (alternating), "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"vllm_console bytecode {'as found' if args.no_compile else 'compiled first'}"
    )
    print(f"load average before: {load_before}, after: {load}")
    for name in apps:
        print(f"  {name:<20} wall " + " ".join(f"{v * 1000:4.0f}" for v in walls[name]) + " ms")
    print()
    header = (
        f"{'measure':<30} | {'minimal app':>11} | {'vllm-console':>12} | {'ratio':>6} | "
        f"{'target':>7} | met?"
    )
    print(header)
    print("-" * len(header))
    met_wall = _row("wall, spawn to frame", walls)
    _row("CPU, whole process", cpus)
    return 0 if met_wall else 1


def _row(label: str, values: dict[str, list[float]]) -> bool:
    minimal = statistics.median(values["minimal Textual app"])
    console = statistics.median(values["vllm-console"])
    ratio = console / minimal
    met = ratio <= TARGET_RATIO
    print(
        f"{label + ' (median)':<30} | {minimal * 1000:>8.0f} ms | {console * 1000:>9.0f} ms | "
        f"{ratio:>5.2f}x | <= {TARGET_RATIO}x | {'yes' if met else 'NO'}"
    )
    return met


if __name__ == "__main__":
    sys.exit(main())
