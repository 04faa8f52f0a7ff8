"""core/ is a library a script can use without a screen: it must not pull in textual or rich.

httpx (a dependency of core) imports rich for its own command-line client whenever rich is
installed, so the check counts only what core adds on top of `import httpx`.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import vllm_console.core


def test_core_modules_do_not_import_textual_or_rich() -> None:
    names = [
        info.name
        for info in pkgutil.walk_packages(vllm_console.core.__path__, "vllm_console.core.")
    ]
    assert len(names) > 5, "core modules not found"
    code = (
        "import importlib, sys\n"
        "import httpx\n"
        "ui = lambda: {m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')}\n"
        "before = ui()\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "print(','.join(sorted(ui() - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported: {out.stdout.strip()}"


def test_textual_is_really_detected() -> None:
    """The check above would see a UI import: prove it on a module that has one."""
    code = (
        "import sys, httpx\n"
        "before = {m for m in sys.modules if m.startswith('textual')}\n"
        "import vllm_console.app\n"
        "print(any(m.startswith('textual') for m in set(sys.modules) - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
