"""Helpers for driving the console against the stand-in vLLM (tests/fakes/fake_vllm.py)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fakes.net import free_port
from vllm_console.config import Settings

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_vllm.py"


def fake_settings(tmp_path: Path, **changes: Any) -> Settings:
    """Settings whose vLLM is the stand-in, on a free port, with every folder in tmp_path."""
    for name in ("home", "cwd", "hub", "models"):
        (tmp_path / name).mkdir(exist_ok=True)
    values: dict[str, Any] = {
        "hf_hub_cache_override": tmp_path / "hub",
        "home": tmp_path / "home",
        "cwd": tmp_path / "cwd",
        "vllm_command": f"{sys.executable} {FAKE}",
        "port": free_port(),
        "stop_timeout": 3.0,
        "gpu_memory_utilization": 0.5,
    }
    values.update(changes)
    return Settings(**values)


async def wait_until(
    pilot: Any, predicate: Callable[[], object], timeout: float = 20.0, what: str = ""
) -> None:
    """Let the app run until `predicate()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.05)
        await asyncio.sleep(0)


async def settle(app: Any, pilot: Any) -> None:
    """Until the console's panes are in and its scan is over (it starts after the first
    frame)."""
    await app.panes_ready.wait()
    while app.browser.scanning:
        await app.workers.wait_for_complete()
        await pilot.pause()
    await pilot.pause()
