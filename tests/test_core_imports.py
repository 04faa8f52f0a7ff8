"""core/ is a library a script can use without a screen: it must not pull in textual or rich."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import vllm_console.core


def test_core_modules_do_not_import_textual_or_rich() -> None:
    names = [
        f"vllm_console.core.{info.name}"
        for info in pkgutil.iter_modules(vllm_console.core.__path__)
    ]
    assert names, "no core modules found"
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported: {out.stdout.strip()}"
