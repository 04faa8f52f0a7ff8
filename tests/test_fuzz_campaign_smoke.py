"""bench/fuzz_campaign.py runs every parser's checks briefly, so that it cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_campaign_runs_every_parser_briefly() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz_campaign.py"), "--examples", "5"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "env_file" in out.stdout and "fleet_file" in out.stdout
    assert ", 0 failing" in out.stdout
