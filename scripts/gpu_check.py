#!/usr/bin/env python3
"""Check the GPU sampler against a real NVIDIA GPU: memory rises, is ours, and comes back.

A child process allocates a few GiB with PyTorch. The sampler (its thread loop, as the
console runs it) must see the device's used memory rise by about that much, attribute it to
the child's PID, and see it fall back after the child exits (within the console's 10 s).

Needs only python3, torch and nvidia-ml-py; the repository's `tui/` is put on sys.path:

    PYTHONPATH=tui python3 scripts/gpu_check.py [--gib 2] [--device 0]

Exit status: 0 PASS (maybe with warnings), 1 FAIL, 2 could not run (no GPU, no torch, the
child could not allocate).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tui"))

from vllm_console.core.gpu.nvml import GpuSnapshot, Sampler, gib_text
from vllm_console.core.gpu.owners import (
    Attribution,
    Share,
    attribute,
    await_memory_released,
)

GiB = 1 << 30
CHILD = """
import sys, torch
size, device = int(float(sys.argv[1]) * (1 << 30)), int(sys.argv[2])
torch.cuda.set_device(device)
block = torch.ones(size, dtype=torch.uint8, device=f"cuda:{device}")
torch.cuda.synchronize()
print("READY", torch.cuda.memory_allocated(device), flush=True)
sys.stdin.readline()
"""


class Watch:
    """The sampler's loop on a thread, as the console runs it; the latest snapshot kept."""

    def __init__(self, interval: float) -> None:
        self.sampler = Sampler(interval=interval)
        self.stop = threading.Event()
        self.count = 0
        self.latest: GpuSnapshot | None = None
        self._seen = threading.Condition()
        self.thread = threading.Thread(target=self.sampler.run, args=(self.stop, self._on))

    def _on(self, snap: GpuSnapshot) -> None:
        with self._seen:
            self.latest, self.count = snap, self.count + 1
            self._seen.notify_all()

    def wait_for(self, test: Callable[[GpuSnapshot], bool], timeout: float) -> GpuSnapshot | None:
        """The first snapshot for which `test(snapshot)` is true, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while True:
                if self.latest is not None and test(self.latest):
                    return self.latest
                left = deadline - time.monotonic()
                if left <= 0 or not self._seen.wait(left):
                    return None


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def add(self, status: str, what: str, detail: str) -> None:
        self.rows.append((status, what, detail))
        print(f"  [{status}] {what:<20} {detail}", flush=True)

    @property
    def failed(self) -> bool:
        return any(status == "FAIL" for status, _, _ in self.rows)


def used(snap: GpuSnapshot | None, device: int) -> int | None:
    dev = snap.device(device) if snap else None
    return dev.memory_used if dev else None


def child_share(snap: GpuSnapshot, pid: int, baseline: GpuSnapshot, device: int) -> Share:
    """The child's share of `device`: by its PID, or else by the change since `baseline`."""
    gpu = attribute(snap, {"child": {pid}}, {"child": baseline})[device]
    return next(iter(gpu.shares), Share("child", 0, Attribution.BY_PROCESS))


def label(share: Share) -> str:
    return f"{share.amount()} ({share.how})"


def start_child(gib: float, device: int, timeout: float) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}  # CUDA's order = NVML's
    env.pop("CUDA_VISIBLE_DEVICES", None)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(gib), str(device)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert child.stdout is not None
    out = child.stdout

    def pump() -> None:
        for line in out:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line.startswith("READY"):
            return child, line.split()[1]
        if not line:
            break
        seen.append(line.rstrip())
    child.kill()
    child.wait()
    raise RuntimeError("the child did not allocate:\n    " + "\n    ".join(seen[-8:]))


def have_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=2.0, help="GiB the child allocates")
    parser.add_argument("--device", type=int, default=0, help="NVML / PCI index of the GPU")
    parser.add_argument("--interval", type=float, default=0.5, help="sampling interval, s")
    parser.add_argument("--timeout", type=float, default=120.0, help="child start-up limit, s")
    args = parser.parse_args(argv)

    first = Sampler().sample_once()
    if not first.available:
        print(f"gpu_check: NO GPU: {first.reason}; nothing to check here.")
        return 2
    gpu = first.device(args.device)
    if gpu is None:
        print(f"gpu_check: no GPU {args.device}: NVML lists {len(first.devices)}.")
        return 2
    if not have_torch():
        print("gpu_check: torch is not installed; the check needs it to allocate memory.")
        return 2
    print(f"GPU check on GPU {gpu.index} {gpu.name} (driver {first.driver})", flush=True)
    report = Report()
    watch = Watch(args.interval)
    watch.thread.start()
    child: subprocess.Popen[str] | None = None
    try:
        baseline = watch.wait_for(lambda s: used(s, args.device) is not None, 10)
        base = used(baseline, args.device)
        if baseline is None or base is None:
            report.add("FAIL", "sampler loop", "no memory reading within 10 s")
            return 1
        print(f"  baseline used        {gib_text(base)}", flush=True)
        try:
            child, allocated = start_child(args.gib, args.device, args.timeout)
        except RuntimeError as exc:
            print(f"gpu_check: {exc}")
            return 2
        pid, want = child.pid, int(0.9 * args.gib * GiB)
        print(f"  child pid {pid} allocated {gib_text(int(allocated))} (torch)", flush=True)
        t0 = time.monotonic()
        rose = watch.wait_for(lambda s: (used(s, args.device) or 0) - base >= want, 10)
        rise = (used(rose or watch.latest, args.device) or 0) - base
        status = "PASS" if rose else "FAIL"
        took = f"after {time.monotonic() - t0:.1f} s" if rose else "within 10 s"
        report.add(status, "memory rose", f"+{gib_text(rise)} (want >= {gib_text(want)}) {took}")

        def ours(snap: GpuSnapshot) -> bool:
            share = child_share(snap, pid, baseline, args.device)
            return share.how is Attribution.BY_PROCESS and (share.used or 0) >= want

        seen = watch.wait_for(ours, 10) or watch.latest
        assert seen is not None
        share = child_share(seen, pid, baseline, args.device)
        if share.how is Attribution.BY_PROCESS and (share.used or 0) >= want:
            report.add("PASS", "attributed to PID", f"{pid}: {label(share)}")
        elif share.how is Attribution.BY_CHANGE and (share.used or 0) >= want:
            listed = [p.pid for p in seen.devices[args.device].processes]
            why = f"NVML lists PIDs {listed}, not {pid} (a container?)"
            report.add("WARN", "attributed to PID", f"{label(share)}; {why}")
        else:
            report.add("FAIL", "attributed to PID", f"{pid}: {label(share)}")

        assert child.stdin is not None
        child.stdin.close()  # the child exits and CUDA hands its memory back
        child.wait(30)
        t1 = time.monotonic()
        by_change = share.how is Attribution.BY_CHANGE
        left = await_memory_released(watch.sampler, {pid}, baseline=baseline if by_change else None)
        back = watch.wait_for(lambda s: (used(s, args.device) or 0) - base < want / 4, 10)
        after = (used(back or watch.latest, args.device) or 0) - base
        if left:
            report.add("FAIL", "memory released", "; ".join(h.describe() for h in left))
        else:
            report.add(
                "PASS", "memory released", f"no holder {time.monotonic() - t1:.1f} s after exit"
            )
        status = "PASS" if back else "FAIL"
        report.add(status, "memory fell", f"{gib_text(max(0, after))} above baseline")

        ring = watch.sampler.history(args.device)
        status = "PASS" if watch.count >= 3 and ring else "FAIL"
        report.add(status, "sampler loop", f"{watch.count} snapshots, {len(ring)} history points")
    finally:
        watch.stop.set()
        watch.thread.join(5)
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
    print("RESULT: FAIL" if report.failed else "RESULT: PASS")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
