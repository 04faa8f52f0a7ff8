"""`vllm-console gpus`: the GPUs' memory, load and processes, without the console.

Plain text, one block per GPU: a memory bar, utilization, temperature and power, then the
processes on it (vLLM ones marked). `--json` prints the snapshot, `{"available": false,
"reason": ...}` without a GPU; with `--watch`, one JSON object per line. `--watch` redraws every
interval (never under 0.25 s) until Ctrl-C. No driver or no GPU is not an error: exit 0; an
NVML that is there but fails (a driver/library mismatch, no permission) exits 1.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from vllm_console.config import Settings
from vllm_console.core.gpu.nvml import GpuSample, GpuSnapshot, GpuState, Sampler, gib_text, na
from vllm_console.core.gpu.owners import is_vllm
from vllm_console.core.text import visible

BAR_WIDTH = 30
CLEAR = "\x1b[H\x1b[2J"


def bar(fraction: float | None, width: int = BAR_WIDTH) -> str:
    if fraction is None:
        return "[" + "?" * width + "]"
    filled = round(fraction * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def render_device(dev: GpuSample) -> list[str]:
    title = f"GPU {dev.index}  {dev.name or 'N/A'}"
    if dev.error:
        return [title, f"  {dev.error}"]
    share = dev.memory_fraction
    percent = f"({share:.0%})" if share is not None else ""
    lines = [
        f"{title}  {dev.uuid or ''}".rstrip(),
        f"  memory  {bar(share)}  {dev.memory_text()}  {percent}".rstrip(),
        f"  util {na(dev.util_gpu, '{}%')}   mem util {na(dev.util_memory, '{}%')}   "
        f"temp {na(dev.temperature_c, '{} C')}   power {dev.power_text()}",
    ]
    if not dev.processes_known:
        return [*lines, "  processes: N/A"]
    if not dev.processes:
        return [*lines, "  no processes"]
    lines.append(f"  {'PID':>8}  {'MEMORY':>10}  PROCESS")
    for proc in dev.processes:
        mark = "  (vLLM)" if is_vllm(proc) else ""
        name = proc.name or "(not visible here)"
        lines.append(f"  {proc.pid:>8}  {gib_text(proc.used_memory):>10}  {name}{mark}")
    return lines


def render(snapshot: GpuSnapshot) -> str:
    if not snapshot.available:
        return visible(f"No GPU: {snapshot.reason}. Only a CPU build of vLLM can run here.") + "\n"
    head = visible(f"driver {snapshot.driver or 'N/A'}, {len(snapshot.devices)} GPU(s)")
    # Process names come from /proc (any program can rename itself), device names and errors
    # from the driver: every line is shown, never obeyed.
    blocks = ["\n".join(visible(line) for line in render_device(d)) for d in snapshot.devices]
    return "\n\n".join([head, *blocks]) + "\n"


def _exit_code(snapshot: GpuSnapshot) -> int:
    return 1 if snapshot.state is GpuState.ERROR else 0


def _emit(snapshot: GpuSnapshot, *, as_json: bool, watch: bool, out: TextIO) -> None:
    if as_json:
        text = json.dumps(snapshot.to_json(), indent=None if watch else 2)
        out.write(text + "\n")
    else:
        if watch and out.isatty():
            out.write(CLEAR)
        out.write(render(snapshot))
    out.flush()


def cmd_gpus(
    settings: Settings,
    *,
    as_json: bool,
    watch: bool,
    interval: float,
    nvml: Any | None = None,
    out: TextIO | None = None,
    frames: int | None = None,
) -> int:
    """Print the GPUs once, or every `interval` seconds with `watch` (Ctrl-C ends it, exit 0).

    `nvml` (a stand-in module), `out` and `frames` (stop after that many) are for tests.
    """
    del settings  # nothing to configure yet; kept for the commands' common signature
    stream = out if out is not None else sys.stdout
    sampler = Sampler(nvml, interval=interval)
    if not watch:
        snap = sampler.sample_once()
        _emit(snap, as_json=as_json, watch=False, out=stream)
        return _exit_code(snap)
    failed = sampler.open()
    if failed is not None:  # nothing will change while we watch
        _emit(failed, as_json=as_json, watch=False, out=stream)
        return _exit_code(failed)
    shown = 0
    try:
        while frames is None or shown < frames:
            started = time.monotonic()
            _emit(sampler.tick(), as_json=as_json, watch=True, out=stream)
            shown += 1
            if frames is None or shown < frames:
                time.sleep(max(0.0, sampler.interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass
    finally:
        sampler.close()
    return 0
