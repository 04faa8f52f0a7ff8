"""`vllm-console serve MODEL`: the console's launch without the screen, for scripts.

Resolves the name as the console does, prints how, streams vLLM's log, prints one line
`READY http://HOST:PORT/v1 SERVED_NAME` when the server answers, stops cleanly on Ctrl-C,
and exits non-zero with the diagnosis when vLLM fails. After the server is gone, where there
is a GPU, it checks that none of the server's processes still holds GPU memory (10 s at
most) and otherwise names them and exits non-zero.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import sys
from dataclasses import dataclass
from typing import TextIO

from vllm_console.config import Settings
from vllm_console.core.catalog.resolve import Rule, resolve
from vllm_console.core.gpu.owners import Holder, check_released
from vllm_console.core.serve.diagnose import Finding, Phase
from vllm_console.core.serve.install import find_vllm
from vllm_console.core.serve.process import ServerProcess, StopReport, health_url
from vllm_console.core.serve.proctable import port_holders, port_is_free, session_pids
from vllm_console.core.serve.runs import RunArchive, RunRecorder
from vllm_console.core.serve.spec import (
    LaunchSpec,
    SpecError,
    launch_env,
    redact_argv,
    redact_env,
    serve_args,
)
from vllm_console.core.serve.supervisor import (
    Exited,
    LogLine,
    PhaseChanged,
    Ready,
    Stalled,
    Supervisor,
)


@dataclass(frozen=True)
class ServeOptions:
    model: str
    served_model_name: str | None = None
    enforce_eager: bool = False
    safe_mode: bool = False
    dtype: str | None = None
    tensor_parallel_size: int = 1
    trust_remote_code: bool = False
    extra_args: str = ""


def print_finding(finding: Finding, out: TextIO) -> None:
    print(f"DIAGNOSIS: {finding.cause}", file=out)
    print(f"  fix: {finding.hint}", file=out)
    if finding.line:
        print(f"  from the log: {finding.line}", file=out)


def build_spec(settings: Settings, opts: ServeOptions, target: str, is_local: bool) -> LaunchSpec:
    spec = LaunchSpec(
        model=target,
        model_is_local=is_local,
        served_model_name=opts.served_model_name or settings.model or opts.model,
        host=settings.host,
        port=settings.port,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        max_model_len=settings.max_model_len,
        dtype=opts.dtype,
        tensor_parallel_size=opts.tensor_parallel_size,
        enforce_eager=opts.enforce_eager,
        trust_remote_code=opts.trust_remote_code,
        api_key=settings.api_key,
        extra_args=opts.extra_args,
    )
    return spec.with_safe_mode() if opts.safe_mode else spec


def cmd_serve(settings: Settings, opts: ServeOptions) -> int:
    err = sys.stderr
    found = resolve(
        opts.model,
        hf_cache=settings.hf_hub_cache,
        model_dirs=settings.model_dirs,
        cwd=settings.cwd,
    )
    print(f"resolved {opts.model} -> {found.target} ({found.rule}: {found.reason})", file=err)
    if found.rule is Rule.NOT_FOUND:
        return 2
    vllm = find_vllm(settings.vllm_command)
    if not vllm.found:
        for problem in vllm.problems:
            print(f"vllm-console: {problem}", file=err)
        return 2
    print(f"vLLM {vllm.version or '?'} ({vllm.distribution or '?'}) from {vllm.how}", file=err)
    if not port_is_free(settings.host, settings.port):
        holders = ", ".join(p.describe() for p in port_holders(settings.port)) or "another process"
        print(
            f"vllm-console: port {settings.port} is taken by {holders}; stop it or pass --port",
            file=err,
        )
        return 2
    spec = build_spec(settings, opts, found.target, found.is_local)
    try:
        argv = vllm.argv(serve_args(spec))
    except SpecError as exc:
        print(f"vllm-console: {exc}", file=err)
        return 2
    recorder = RunArchive(settings.runs_dir).new(opts.model, argv, {}, spec.port)
    env = launch_env(spec, hf_endpoint=settings.hf_endpoint, run_dir=recorder.info.dir)
    recorder.update(env=redact_env(env))
    print("$ " + shlex.join(redact_argv(argv)), file=err)
    print(f"run archived in {recorder.info.dir}", file=err)
    return asyncio.run(_serve(settings, spec, argv, env, recorder))


def _ready_line(spec: LaunchSpec) -> str:
    host = "127.0.0.1" if spec.host in ("0.0.0.0", "::") else spec.host
    return f"READY http://{host}:{spec.port}/v1 {spec.served_model_name}"


async def _serve(
    settings: Settings,
    spec: LaunchSpec,
    argv: list[str],
    env: dict[str, str],
    recorder: RunRecorder,
) -> int:
    out, err = sys.stdout, sys.stderr
    server = ServerProcess(argv, env)
    await server.start()
    recorder.update(pid=server.pid)
    supervisor = Supervisor(server, health_url(spec.host, spec.port), settings.stall_timeout)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_requested.set)
    seen: set[int] = set()  # every PID of the server's we saw: they must let go of the GPU
    stopper = asyncio.create_task(_stop_when(stop_requested, server, supervisor, settings, seen))
    exited: Exited | None = None
    pending: list[str] = []
    try:
        async for event in supervisor.events():
            if isinstance(event, LogLine):
                print(event.text, file=out, flush=True)
                pending.append(event.text)
                if len(pending) < 200:
                    continue
            elif isinstance(event, PhaseChanged):
                print(
                    f"[phase] {event.phase} (after {event.previous} {event.previous_seconds:.1f}s)",
                    file=err,
                    flush=True,
                )
            elif isinstance(event, Ready):
                print(_ready_line(spec), file=out, flush=True)
                if server.pid is not None:
                    seen.update(session_pids(server.pid))
            elif isinstance(event, Stalled):
                print_finding(event.finding, err)
            elif isinstance(event, Exited):
                exited = event
            recorder.write_lines(pending)
            pending.clear()
    finally:
        recorder.write_lines(pending)
        report = stopper.result() if stopper.done() and not stopper.cancelled() else None
        stopper.cancel()
        report = report or await server.stop(settings.stop_timeout)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    held = await asyncio.to_thread(check_released, seen) if seen else None
    code = _finish(recorder, supervisor, exited, report, stop_requested.is_set())
    return report_gpu(held) or code


def report_gpu(held: list[Holder] | None) -> int:
    """Say whether the GPU memory came back; 1 if something still holds it."""
    if held is None:
        return 0
    if not held:
        print("GPU memory released", file=sys.stderr)
        return 0
    print("vllm-console: GPU memory still held after the stop:", file=sys.stderr)
    for holder in held:
        print(f"  {holder.describe()}", file=sys.stderr)
    pids = sorted({h.pid for h in held if h.pid is not None})
    if pids:
        print(f"  to free it: kill -9 {' '.join(map(str, pids))}", file=sys.stderr)
    return 1


def _finish(
    recorder: RunRecorder,
    supervisor: Supervisor,
    exited: Exited | None,
    report: StopReport,
    asked_to_stop: bool,
) -> int:
    err = sys.stderr
    findings = exited.findings if exited else ()
    code = exited.returncode if exited else None
    stopped = asked_to_stop and supervisor.phase is Phase.STOPPED
    reason = "stopped by the user" if stopped else f"vLLM exited with code {code}"
    recorder.finish(
        status="stopped" if stopped else "failed",
        returncode=code,
        reason=reason,
        phases=[(str(p), t) for p, t in supervisor.phase_times],
        findings=[f.cause for f in findings],
    )
    if report.survivors:
        print(f"vllm-console: processes still alive after stop: {report.survivors}", file=err)
    if stopped:
        print(f"stopped in {report.seconds:.1f}s", file=err)
        return 0 if report.clean else 1
    for finding in findings:
        print_finding(finding, err)
    print(f"vllm-console: {reason}", file=err)
    return 1


async def _stop_when(
    requested: asyncio.Event,
    server: ServerProcess,
    supervisor: Supervisor,
    settings: Settings,
    seen: set[int],
) -> StopReport:
    await requested.wait()
    if server.pid is not None:
        seen.update(session_pids(server.pid))
    supervisor.mark_stopping()
    print("stopping vLLM ...", file=sys.stderr, flush=True)
    return await server.stop(settings.stop_timeout)
