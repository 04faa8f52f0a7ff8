"""`vllm-console serve MODEL`: the console's launch without the screen, for scripts.

Resolves the name as the console does, prints how, streams vLLM's log, prints one line
`READY http://HOST:PORT/v1 SERVED_NAME` when the server answers, stops cleanly on Ctrl-C,
and exits non-zero with the diagnosis when vLLM fails. After the server is gone, where there
is a GPU, it checks that none of the server's processes still holds GPU memory (10 s at
most) and otherwise names them and exits non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from vllm_console.config import Settings
from vllm_console.core.catalog.resolve import Rule, resolve
from vllm_console.core.fleet.up import api_url
from vllm_console.core.gpu.owners import Holder, check_released
from vllm_console.core.serve.diagnose import Finding
from vllm_console.core.serve.gguf import (
    NOTES,
    file_tokenizer,
    is_gguf_model,
    names_tokenizer,
    split_problem,
)
from vllm_console.core.serve.install import find_vllm
from vllm_console.core.serve.proctable import port_holders, port_is_free, session_pids
from vllm_console.core.serve.redact import API_KEY_ENV, REDACTED, redact_argv
from vllm_console.core.serve.session import ServerSession, SessionEnded, SessionEvent, Spawned
from vllm_console.core.serve.spec import LaunchSpec, SpecError, serve_args, take_api_key
from vllm_console.core.serve.supervisor import LogLine, PhaseChanged, Ready, Stalled
from vllm_console.core.text import visible


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


def print_finding(finding: Finding, out: TextIO, prefix: str = "") -> None:
    """The diagnosis in three lines; `prefix` names the server among several (`up`)."""
    print(prefix + visible(f"DIAGNOSIS: {finding.cause}"), file=out)
    print(prefix + visible(f"  fix: {finding.hint}"), file=out)
    if finding.line:  # quoted from the server's log: shown, never obeyed
        print(prefix + visible(f"  from the log: {finding.line}"), file=out)


def build_spec(
    settings: Settings,
    opts: ServeOptions,
    target: str,
    is_local: bool,
    tokenizer: str | None = None,
) -> LaunchSpec:
    spec = LaunchSpec(
        model=target,
        model_is_local=is_local,
        tokenizer=tokenizer,
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
        ms_cache=settings.modelscope_cache,
    )
    print(
        visible(f"resolved {opts.model} -> {found.target} ({found.rule}: {found.reason})"), file=err
    )
    if found.rule is Rule.NOT_FOUND:
        return 2
    tokenizer: str | None = None
    if found.path is not None and is_gguf_model(str(found.path)):
        gguf = _gguf_launch(settings, opts, found.path)
        if isinstance(gguf, int):
            return gguf
        tokenizer = gguf
    vllm = find_vllm(settings.vllm_command)
    if not vllm.found:
        for problem in vllm.problems:
            print(visible(f"vllm-console: {problem}"), file=err)
        return 2
    print(
        visible(f"vLLM {vllm.version or '?'} ({vllm.distribution or '?'}) from {vllm.how}"),
        file=err,
    )
    if not port_is_free(settings.host, settings.port):
        holders = ", ".join(p.describe() for p in port_holders(settings.port)) or "another process"
        print(
            visible(
                f"vllm-console: port {settings.port} is taken by {holders}; stop it or pass --port"
            ),
            file=err,
        )
        return 2
    try:  # a key in the extra args goes to the environment, as the settings' key does
        spec = take_api_key(build_spec(settings, opts, found.target, found.is_local, tokenizer))
        argv = vllm.argv(serve_args(spec))
    except SpecError as exc:
        print(visible(f"vllm-console: {exc}"), file=err)
        return 2
    key = f"{API_KEY_ENV}={REDACTED} " if spec.api_key else ""
    print(visible("$ " + key + shlex.join(redact_argv(argv))), file=err)
    session = ServerSession(settings, model=opts.model, spec=spec, argv=argv, origin="serve")
    return asyncio.run(_serve(session))


def _gguf_launch(settings: Settings, opts: ServeOptions, path: Path) -> str | int | None:
    """A GGUF file as the model: exit code 2 for a split set (vLLM loads one file only), else
    the `--tokenizer` to pass (None: the user's own, or none found), said on stderr."""
    err = sys.stderr
    if (problem := split_problem(str(path))) is not None:
        print(visible(f"vllm-console: {problem}"), file=err)
        return 2
    for note in NOTES:
        print(visible(f"note: {note}"), file=err)
    try:
        own = names_tokenizer(shlex.split(opts.extra_args))
    except ValueError:
        own = False  # unbalanced quotes: build_spec names that error below
    if own:
        return None
    from vllm_console.core.catalog import scan

    listing = scan.list_models(
        settings.hf_hub_cache, settings.model_dirs, settings.modelscope_cache
    )
    tokenizer = file_tokenizer(opts.model, path, listing.entries, scan.detail)
    if tokenizer is None:
        print(
            "note: no tokenizer found for this GGUF file (none beside it, no original model in "
            "the catalog): vLLM converts the file's own. Pass -- --tokenizer ORG/NAME to choose",
            file=err,
        )
    else:
        print(
            visible(f"tokenizer: {tokenizer} (the original model's, for the GGUF file)"), file=err
        )
    return tokenizer


def _ready_line(spec: LaunchSpec) -> str:
    return f"READY {api_url(spec.host, spec.port)} {spec.served_model_name}"


async def _serve(session: ServerSession) -> int:
    err = sys.stderr
    loop = asyncio.get_running_loop()
    seen: set[int] = set()  # every PID of the server's we saw: they must let go of the GPU

    def stop() -> None:
        if session.stopping:
            return
        note_pids(session, seen)
        print("stopping vLLM ...", file=err, flush=True)
        session.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    ended: SessionEnded | None = None
    try:
        async with contextlib.aclosing(session.events()) as events:
            async for event in events:
                if isinstance(event, SessionEnded):
                    ended = event
                else:
                    _show(event, session, seen)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    held = await asyncio.to_thread(check_released, seen) if seen else None
    code = _finish(ended) if ended is not None else 1
    return report_gpu(held) or code


def note_pids(session: ServerSession, seen: set[int]) -> None:
    if session.pid is not None:
        seen.update(session_pids(session.pid))


def _show(event: SessionEvent, session: ServerSession, seen: set[int]) -> None:
    out, err = sys.stdout, sys.stderr
    if isinstance(event, LogLine):
        out.write("".join(visible(line) + "\n" for line in event.lines))
        out.flush()
    elif isinstance(event, Spawned):
        print(visible(f"run archived in {event.run.dir}"), file=err)
    elif isinstance(event, PhaseChanged):
        print(
            f"[phase] {event.phase} (after {event.previous} {event.previous_seconds:.1f}s)",
            file=err,
            flush=True,
        )
    elif isinstance(event, Ready):
        print(visible(_ready_line(session.spec)), file=out, flush=True)
        note_pids(session, seen)
    elif isinstance(event, Stalled):
        print_finding(event.finding, err)


def report_gpu(held: list[Holder] | None) -> int:
    """Say whether the GPU memory came back; 1 if something still holds it."""
    if held is None:
        return 0
    if not held:
        print("GPU memory released", file=sys.stderr)
        return 0
    print("vllm-console: GPU memory still held after the stop:", file=sys.stderr)
    for holder in held:
        print(visible(f"  {holder.describe()}"), file=sys.stderr)
    pids = sorted({h.pid for h in held if h.pid is not None})
    if pids:
        print(f"  to free it: kill -9 {' '.join(map(str, pids))}", file=sys.stderr)
    return 1


def _finish(ended: SessionEnded) -> int:
    """Say how the session ended: 0 when stopped as asked, 1 otherwise."""
    err = sys.stderr
    report = ended.report
    if ended.stopped:
        print(f"stopped in {report.seconds:.1f}s" if report else ended.note, file=err)
        return 0
    for finding in ended.findings:
        print_finding(finding, err)
    print(visible(f"vllm-console: {ended.reason}"), file=err)
    return 1
