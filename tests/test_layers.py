"""The layer contract in pyproject.toml holds, and it would catch a wrong import.

The test command runs `lint-imports` itself; this test proves the contract has teeth: a copy
of the package with one forbidden import added (core importing textual, the endpoint
client importing the catalog, a widget importing the App) must fail it, naming the import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed")


def lint(package_root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    return subprocess.run(
        [str(LINT), str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=package_root,
        timeout=120,
    )


def test_the_contract_holds() -> None:
    out = lint(ROOT / "tui")
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    ("module", "bad_import", "said"),
    [
        ("core/serve/spec.py", "import textual.app", "vllm_console.core.serve.spec -> textual"),
        (
            "core/endpoint/sse.py",
            "import vllm_console.core.catalog.entry",
            "vllm_console.core.endpoint.sse -> vllm_console.core.catalog.entry",
        ),
        (
            "controllers/gpu_guard.py",
            "import vllm_console.screens.gpu_holders",
            "vllm_console.controllers.gpu_guard -> vllm_console.screens.gpu_holders",
        ),
        (
            "widgets/footer.py",
            "import vllm_console.app",
            "vllm_console.widgets.footer -> vllm_console.app",
        ),
    ],
)
def test_a_wrong_import_breaks_it(tmp_path: Path, module: str, bad_import: str, said: str) -> None:
    copy = tmp_path / "tui"
    shutil.copytree(ROOT / "tui", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "vllm_console" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{bad_import}\n", encoding="utf-8")
    out = lint(copy)
    assert out.returncode != 0
    assert said in out.stdout
