"""The console's start: garbage collection is off while it imports, frozen and on again after.

Run in a fresh interpreter (freezing the collector is for the whole process), with Textual's
`App.run` replaced, so nothing is drawn.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = """
import gc, json, sys
import textual.app

seen = {}

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "vllm_console.app":
            seen["collecting while importing the app"] = gc.isenabled()
        return None

def run(self, *args, **kwargs):
    seen["collecting when it runs"] = gc.isenabled()
    seen["objects frozen when it runs"] = gc.get_freeze_count()

sys.meta_path.insert(0, Watch())
textual.app.App.run = run
from vllm_console.cli import main
seen["status"] = main(["--model-dirs", sys.argv[1]])
print(json.dumps(seen))
"""


def test_imports_are_not_collected_and_then_frozen(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_"))}
    env["HOME"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    seen = json.loads(out.stdout)
    assert seen["status"] == 0
    assert seen["collecting while importing the app"] is False
    assert seen["collecting when it runs"] is True
    assert seen["objects frozen when it runs"] > 10_000  # Textual and the app, at least
