#!/usr/bin/env python3
"""The console on a real NVIDIA GPU: its strip, the fit, and the memory check after a stop.

Drives the real App (Textual's Pilot, headless) with the real NVML sampler, launching the
stand-in vLLM (tests/fakes/fake_vllm.py) whose worker holds `--gib` GiB of GPU memory with
PyTorch (FAKE_VLLM_CUDA_GIB). Two journeys:

1. launch -> our memory seen on the GPU (by process or by change) -> stop -> "GPU memory
   released" within the console's 10 s.
2. the same, with one more process holding memory that the console is told is the server's
   (as a worker a stop could not reach): the dialog names its PID and memory; kill -> released.

Needs python3 >= 3.11, torch with CUDA, nvidia-ml-py and the console's own dependencies; run
from the repository root:

    PYTHONPATH=tui:. python3 scripts/gpu_console_check.py [--gib 3] [--out DIR]

Prints one line per check and RESULT: PASS or FAIL; with `--out`, SVG screenshots of the
console, the launch dialog and the dialog of journey 2. Exit status: 0 PASS, 1 FAIL, 2 could
not run (no GPU, no torch).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tui")]

from tests.conftest import FakeCatalog, demo_entries  # noqa: E402
from tests.widgets.console_helpers import fake_settings, wait_until  # noqa: E402

from vllm_console.app import VllmConsoleApp  # noqa: E402
from vllm_console.controllers.server import server_name  # noqa: E402
from vllm_console.core.gpu.nvml import GpuState, probe  # noqa: E402
from vllm_console.core.gpu.owners import Release  # noqa: E402
from vllm_console.core.serve.diagnose import Phase  # noqa: E402
from vllm_console.screens.gpu_holders import GpuHoldersScreen  # noqa: E402
from vllm_console.screens.launch import LaunchScreen  # noqa: E402

GiB = 1 << 30
HOLDER = (
    "import sys, torch; x = torch.ones(int(float(sys.argv[1]) * (1 << 30)), dtype=torch.uint8,"
    " device='cuda'); torch.cuda.synchronize(); print('READY', flush=True); sys.stdin.readline()"
)
FAILED: list[str] = []


def check(ok: bool, what: str, detail: object) -> None:
    print(f"  [{'PASS' if ok else 'FAIL'}] {what:<28} {detail}", flush=True)
    if not ok:
        FAILED.append(what)


async def journey(held: bool, gib: float, out: Path | None) -> None:
    os.environ["FAKE_VLLM_CUDA_GIB"] = str(gib)
    app = VllmConsoleApp(
        fake_settings(Path(tempfile.mkdtemp())), catalog=FakeCatalog(demo_entries())
    )
    name = "held" if held else "released"
    print(f"journey: {name}", flush=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.panes_ready.is_set() and app.browser.entries, 20)
        await wait_until(pilot, lambda: app.gauges.snapshot is not None, 10, "a GPU snapshot")
        snap = app.gauges.snapshot
        assert snap is not None
        check(snap.state is GpuState.OK, "strip sees the GPUs", snap.reason)
        await wait_until(pilot, lambda: bool(app.browser.fits), 10, "the fit column")
        first = app.browser.entries[0]
        fit = app.browser.fits.get(first.key)
        check(fit is not None, "fit column", f"{first.id}: {fit.short() if fit else None}")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen), 10, "the dialog")
        screen = app.screen
        await wait_until(pilot, lambda: "Fit: " in str(screen.query_one("#launch-gpu").render()))
        check(
            True, "launch dialog fit", str(screen.query_one("#launch-gpu").render()).split("\n")[0]
        )
        if out is not None and not held:
            app.save_screenshot("launch_dialog.svg", str(out))
        await pilot.press("ctrl+l")
        phases = (Phase.READY, Phase.FAILED)
        await wait_until(pilot, lambda: app.server_state.phase in phases, 120, "ready")
        check(app.server_state.phase is Phase.READY, "stand-in server ready", app.server_state.note)

        def ours() -> int:
            return sum(gpu.ours for gpu in app.gauges.shares())

        await wait_until(pilot, lambda: ours() >= 0.9 * gib * GiB, 30, "our memory")
        await pilot.pause(2.5)  # process lists are read every 2 s
        shares = [f"{s.owner} {s.amount()}" for gpu in app.gauges.shares() for s in gpu.shares]
        check(ours() >= 0.9 * gib * GiB, "our memory on the GPU", shares)
        if out is not None and not held:
            app.save_screenshot("console_gpu.svg", str(out))
        child = None
        guard = app.gpu_guard
        assert guard is not None
        if held:
            child = subprocess.Popen(
                [sys.executable, "-c", HOLDER, str(gib)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            assert child.stdout is not None
            child.stdout.readline()
            # as if it were one of the server's workers
            guard.add_pids(server_name(app.server_state), [child.pid])
            guard.timeout = 4.0
        await pilot.press("s")
        await wait_until(pilot, lambda: app.server_state.phase is Phase.STOPPED, 30, "stopped")
        stopped = time.monotonic()
        try:
            if not held:
                await wait_until(pilot, lambda: guard.outcome is not None, 20, "the check")
                check(guard.outcome is Release.RELEASED, "memory released", notes(app))
                return
            await wait_until(pilot, lambda: holders_shown(app), 20, "the holders dialog")
            dialog = app.screen
            assert isinstance(dialog, GpuHoldersScreen) and child is not None
            after = time.monotonic() - stopped
            text = str(dialog.query_one("#holders-list").render())
            check(dialog.pids == [child.pid], "held memory named", f"{text} ({after:.1f} s)")
            if out is not None:
                app.save_screenshot("holders.svg", str(out))
            await pilot.press("k")
            await wait_until(pilot, lambda: child.poll() is not None, 10, "the kill")
            await wait_until(
                pilot,
                lambda: not guard.watching and guard.outcome is not Release.HELD,
                20,
                "the check after the kill",
            )
            check(guard.outcome is Release.RELEASED, "released after kill", notes(app))
        finally:
            if child is not None and child.poll() is None:
                child.kill()


def holders_shown(app: VllmConsoleApp) -> bool:
    return isinstance(app.screen, GpuHoldersScreen) and bool(app.screen.query("#holders-list"))


def notes(app: Any) -> list[str]:
    return [n.message for n in app._notifications]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=3.0, help="GiB the worker holds")
    parser.add_argument("--out", type=Path, default=None, help="folder for SVG screenshots")
    args = parser.parse_args()
    if importlib.util.find_spec("torch") is None:
        print("cannot run: PyTorch is not installed")
        return 2
    gpus = probe()
    if not gpus.available:
        print(f"cannot run: {gpus.reason}")
        return 2
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    for held in (False, True):
        try:
            asyncio.run(journey(held, args.gib, args.out))
        except Exception as exc:  # a journey that breaks is a failed check, not a traceback
            check(False, "journey ran", f"{type(exc).__name__}: {exc}")
    print(f"RESULT: {'FAIL' if FAILED else 'PASS'}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
