"""The user's own `vllm bench serve`, one concurrency step at a time, its result read back.

Run with `--save-result --result-dir D --result-filename F` and exact output lengths
(`--ignore-eos`), percentiles 50 and 99 of TTFT, TPOT, ITL and E2EL. The JSON it writes is
untrusted (another program's file): `parse_result` takes only the figures it knows, each of
the right type and range, and says what is missing. A benchmark that cannot start or fails
becomes a `BenchFailure` with its own last words and a fix; cancelling the step ends the
benchmark's whole process group.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import os
import re
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllm_console.core.bench.arrivals import INF
from vllm_console.core.bench.stats import VLLM, StepResult
from vllm_console.core.files import read_capped
from vllm_console.core.serve.install import VllmCommand

MIN_VERSION = (0, 9)  # the first release with the `vllm bench serve` command
MAX_RESULT_BYTES = 256 << 20  # it keeps every generated text: big, but not this big
TAIL_LINES = 40
LIMIT = 1e15


class BenchFailure(Exception):
    """`vllm bench serve` could not run or gave no result: `finding` says why and the fix."""

    def __init__(self, finding: str) -> None:
        super().__init__(finding)
        self.finding = finding


@dataclass(frozen=True)
class Load:
    """What every step sends: the same for both clients."""

    base_url: str
    model: str  # the served name
    tokenizer: str  # the model's folder or hub id, for the benchmark's prompts
    num_prompts: int
    input_len: int
    output_len: int
    dataset: str = "random"
    dataset_path: str | None = None
    api_key: str | None = None
    seed: int = 0
    request_rate: float = INF  # requests a second; inf: all at once
    burstiness: float = 1.0  # 1: Poisson arrivals; inf: evenly spaced


def bench_prefix(found: VllmCommand) -> tuple[tuple[str, ...], str | None]:
    """(argv prefix of `vllm bench serve`, None) or ((), why it cannot run)."""
    if not found.found:
        return (), "; ".join(found.problems) or "vLLM not found"
    if found.model_as_flag or found.prefix[-1:] != ("serve",):
        return (), f"{found.how} runs the old API server entry point, which has no benchmark"
    version = _version(found.version)
    if version is not None and version < MIN_VERSION:
        return (), f"vLLM {found.version} has no `vllm bench serve` (0.9 or later has)"
    return (*found.prefix[:-1], "bench", "serve"), None


def _version(text: str | None) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(match[1]), int(match[2])) if match else None


def bench_argv(prefix: Sequence[str], load: Load, concurrency: int, out: Path) -> list[str]:
    root = load.base_url.rstrip("/").removesuffix("/v1")
    argv = [*prefix, "--backend", "openai", "--base-url", root, "--endpoint", "/v1/completions"]
    argv += ["--model", load.tokenizer, "--served-model-name", load.model]
    argv += ["--num-prompts", str(load.num_prompts), "--max-concurrency", str(concurrency)]
    argv += ["--request-rate", _number(load.request_rate)]
    argv += ["--burstiness", _number(load.burstiness)]
    argv += ["--ignore-eos", "--seed", str(load.seed)]
    if load.dataset == "sharegpt" and load.dataset_path:
        argv += ["--dataset-name", "sharegpt", "--dataset-path", load.dataset_path]
        argv += ["--sharegpt-output-len", str(load.output_len)]
    else:
        argv += ["--dataset-name", "random", "--random-input-len", str(load.input_len)]
        argv += ["--random-output-len", str(load.output_len)]
    argv += ["--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99"]
    argv += ["--save-result", "--result-dir", str(out.parent), "--result-filename", out.name]
    argv += ["--disable-tqdm"]
    return argv


def _number(value: float) -> str:
    return "inf" if math.isinf(value) else repr(value)


async def run_vllm_step(
    prefix: Sequence[str], load: Load, concurrency: int, env: Mapping[str, str] | None = None
) -> StepResult:
    """One step by `vllm bench serve`; BenchFailure when it gives no result."""
    with tempfile.TemporaryDirectory(prefix="vllm-console-bench-") as scratch:
        out = Path(scratch) / f"c{concurrency}.json"
        argv = bench_argv(prefix, load, concurrency, out)
        child_env = dict(os.environ if env is None else env)
        if load.api_key:
            child_env["OPENAI_API_KEY"] = load.api_key  # how its client sends a key
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                env=child_env,
                start_new_session=True,
            )
        except OSError as exc:
            raise BenchFailure(f"vllm bench serve did not start: {exc}") from None
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        try:
            assert proc.stdout is not None
            async for raw in proc.stdout:
                tail.append(raw.decode("utf-8", "replace").rstrip())
            code = await proc.wait()
        finally:
            if proc.returncode is None:  # cancelled: end it and everything it started
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    await asyncio.shield(proc.wait())
        if code != 0:
            raise BenchFailure(explain_failure(code, list(tail)))
        try:
            data = json.loads(read_capped(out, MAX_RESULT_BYTES))
        except (OSError, ValueError, RecursionError) as exc:
            raise BenchFailure(f"vllm bench serve wrote no readable result: {exc}") from None
    return parse_result(data, concurrency, load.num_prompts)


def explain_failure(code: int, tail: Sequence[str]) -> str:
    """The benchmark's own last error line, and what to do about it."""
    said = next(
        (line.strip() for line in reversed(tail) if re.search(r"Error|error:", line)),
        tail[-1].strip() if tail else "(it printed nothing)",
    )
    text = "\n".join(tail)
    if "No module named" in text:
        fix = "install the benchmark's extras (pip install 'vllm[bench]'), or use --client console"
    elif re.search(r"tokenizer|not a valid model identifier|Repository Not Found", text, re.I):
        fix = "it needs the model's tokenizer: bench a server launched here, or --client console"
    elif "Connection" in text or "connect" in text:
        fix = "check that the server is up and the URL right"
    else:
        fix = "run it by hand to see more, or use --client console"
    return f"vllm bench serve failed (exit {code}): {said[:300]}. Fix: {fix}"


_FIGURES = {
    "duration_s": ("duration",),
    "request_throughput": ("request_throughput",),
    "output_throughput": ("output_throughput",),
    "total_token_throughput": ("total_token_throughput",),
    "ttft_p50_ms": ("p50_ttft_ms", "median_ttft_ms"),
    "ttft_p99_ms": ("p99_ttft_ms",),
    "tpot_p50_ms": ("p50_tpot_ms", "median_tpot_ms"),
    "itl_p50_ms": ("p50_itl_ms", "median_itl_ms"),
    "itl_p99_ms": ("p99_itl_ms",),
    "e2el_p50_ms": ("p50_e2el_ms", "median_e2el_ms"),
    "mean_ttft_ms": ("mean_ttft_ms",),
    "mean_tpot_ms": ("mean_tpot_ms",),
    "mean_itl_ms": ("mean_itl_ms",),
    "mean_e2el_ms": ("mean_e2el_ms",),
}
_COUNTS = ("completed", "total_input_tokens", "total_output_tokens")


def parse_result(data: Any, concurrency: int, num_prompts: int) -> StepResult:
    """A step from `vllm bench serve`'s result JSON; BenchFailure naming what is wrong."""
    if not isinstance(data, dict):
        raise BenchFailure("vllm bench serve's result is not a JSON object")
    figures: dict[str, float] = {}
    for name, keys in _FIGURES.items():
        value = next((data[k] for k in keys if k in data), None)
        if value is None and name.startswith("mean_"):
            value = 0.0  # means are extra: a run asked for percentiles only has none
        figures[name] = _figure(value, keys[0])
    counts = {name: int(_figure(data.get(name), name)) for name in _COUNTS}
    failed_raw = data.get("failed")
    failed = (
        int(_figure(failed_raw, "failed"))
        if failed_raw is not None
        else max(num_prompts - counts["completed"], 0)
    )
    errors = data.get("errors")
    said = [e for e in errors if isinstance(e, str) and e] if isinstance(errors, list) else []
    return StepResult(
        concurrency=concurrency,
        source=VLLM,
        num_prompts=num_prompts,
        failed=failed,
        errors=tuple(dict.fromkeys(e[:300] for e in said))[:5],
        completed=counts["completed"],
        total_input_tokens=counts["total_input_tokens"],
        total_output_tokens=counts["total_output_tokens"],
        **{name: figures[name] for name in _FIGURES},  # type: ignore[arg-type]
    )


def _figure(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BenchFailure(f"vllm bench serve's result has no number for {key!r}")
    if not 0 <= value <= LIMIT:  # NaN too
        raise BenchFailure(f"vllm bench serve's result has an implausible {key!r}")
    if key in (*_COUNTS, "failed") and not isinstance(value, int):
        raise BenchFailure(f"vllm bench serve's result has a fractional {key!r}")
    return float(value)
