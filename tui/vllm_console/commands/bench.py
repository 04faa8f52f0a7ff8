"""`vllm-console bench`: sweep concurrency levels against an endpoint, keep the result.

The endpoint is `--server NAME` (a server started here, as `ps` lists it: its launch spec is
kept with the result) or the base URL (`--base-url`, VLLM_BASE_URL). The load is run by the
user's own `vllm bench serve` when a local vLLM has it, else by the console's client
(`--client` chooses); `--request-rate`/`--burstiness` pace the requests as vLLM's benchmark
does (all at once by default). One line per step as it ends; `--json` prints the whole record
at the end instead. Every result goes into the run archive (`vllm-console runs` lists it).
Exit status: 0 done, 1 the endpoint or the benchmark failed, 2 bad arguments, 130 cancelled
(Ctrl-C stops at once, closing every connection; what was measured is kept).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from vllm_console.config import Settings
from vllm_console.core.bench.form import (
    MAX_LEN,
    MAX_PROMPTS,
    BadArgument,
    bounded,
    parse_burstiness,
    parse_dataset,
    parse_levels,
    parse_rate,
)
from vllm_console.core.text import visible

OK, FAILED, BAD_USAGE, INTERRUPTED = 0, 1, 2, 130


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bench", parents=[common], help="load-test the endpoint, sweep concurrency")
    p.add_argument("--server", metavar="NAME", help="a server started here (see ps)")
    p.add_argument("--model", dest="bench_model", metavar="M", help="model to ask")
    p.add_argument("--concurrency", default="1,4,16", help="levels to sweep, e.g. 1,4,16")
    p.add_argument("--num-prompts", type=int, default=64, metavar="N", help="requests per level")
    p.add_argument("--input-len", type=int, default=1024, metavar="I", help="prompt tokens")
    p.add_argument("--output-len", type=int, default=128, metavar="O", help="output tokens")
    p.add_argument(
        "--dataset", nargs="+", default=["random"], metavar="random|sharegpt PATH",
        help="random prompts of exact length, or a ShareGPT JSON file's",
    )  # fmt: skip
    p.add_argument("--client", choices=("auto", "vllm", "console"), default="auto",
                   help="who runs the load: vllm bench serve, the console, or auto")  # fmt: skip
    p.add_argument("--request-rate", default="inf", metavar="R",
                   help="requests a second each step sends at (inf: all at once)")  # fmt: skip
    p.add_argument("--burstiness", default="1", metavar="B",
                   help="arrivals: 1 Poisson, larger more even, inf evenly spaced")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the prompts and arrivals")
    p.add_argument("--json", action="store_true", help="print the record as JSON at the end")


def _say(line: str) -> None:
    print(visible(f"vllm-console: {line}"), file=sys.stderr, flush=True)


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from vllm_console.core.bench.sweep import BenchConfig

    try:
        levels = parse_levels(args.concurrency)
        dataset, path = parse_dataset(args.dataset)
        prompts = bounded("--num-prompts", args.num_prompts, MAX_PROMPTS)
        input_len = bounded("--input-len", args.input_len, MAX_LEN)
        output_len = bounded("--output-len", args.output_len, MAX_LEN)
        rate = parse_rate(args.request_rate)
        burstiness = parse_burstiness(args.burstiness)
    except BadArgument as exc:
        _say(str(exc))
        return BAD_USAGE
    base_url: str = settings.base_url
    name: str | None = None
    argv: tuple[str, ...] = ()
    if args.server:
        found = asyncio.run(_find_server(settings, args.server))
        if isinstance(found, str):
            _say(found)
            return BAD_USAGE
        base_url, name, argv = found
    config = BenchConfig(
        base_url=base_url,
        concurrency=levels,
        num_prompts=prompts,
        input_len=input_len,
        output_len=output_len,
        model=args.bench_model or settings.model,
        api_key=settings.api_key,
        dataset=dataset,
        dataset_path=path,
        client=args.client,
        seed=args.seed,
        request_rate=rate,
        burstiness=burstiness,
        server_name=name,
        launch_argv=argv,
    )
    return asyncio.run(_run(settings, config, as_json=args.json))


async def _find_server(settings: Settings, wanted: str) -> tuple[str, str, tuple[str, ...]] | str:
    from vllm_console.core.fleet.registry import find, list_servers
    from vllm_console.core.serve.runs import RunArchive

    entries = find(await list_servers(settings), wanted)
    if len(entries) != 1 or entries[0].url is None:
        many = "names several servers: use a run id" if entries else "is not a server running here"
        return f"--server {wanted!r} {many} (see vllm-console ps)"
    entry = entries[0]
    run = RunArchive(settings.runs_dir).get(entry.run_id)
    return entry.url or "", entry.name, run.argv if run else ()


def _step_line(step: Any) -> str:
    line = (
        f"concurrency {step.concurrency:>4}: {step.completed} ok, {step.failed} failed, "
        f"{step.request_throughput:.2f} req/s, {step.output_throughput:.1f} out tok/s, "
        f"{step.total_token_throughput:.1f} total tok/s, TTFT p50 {step.ttft_p50_ms:.1f} "
        f"p99 {step.ttft_p99_ms:.1f} ms, TPOT p50 {step.tpot_p50_ms:.2f} ms, ITL p50 "
        f"{step.itl_p50_ms:.2f} p99 {step.itl_p99_ms:.2f} ms, E2EL p50 {step.e2el_p50_ms:.1f} ms"
    )
    return line + (f"  [MISMATCH: {step.mismatch}]" if step.mismatch else "")


async def _run(settings: Settings, config: Any, *, as_json: bool) -> int:
    from vllm_console.core.bench.arrivals import describe_rate
    from vllm_console.core.bench.load import Progress
    from vllm_console.core.bench.sweep import Finding, StepDone, StepStarted, Sweep
    from vllm_console.core.serve.install import find_vllm

    vllm = None if config.client == "console" else await asyncio.to_thread(
        find_vllm, settings.vllm_command
    )  # fmt: skip

    def on_event(event: object) -> None:
        if isinstance(event, StepStarted):
            _say(
                f"concurrency {event.concurrency}: {event.total} requests arriving "
                f"{describe_rate(config.request_rate, config.burstiness)} ({event.source})"
            )
        elif isinstance(event, StepDone) and not as_json:
            print(visible(_step_line(event.step)), flush=True)
        elif isinstance(event, Finding):
            _say(event.text)
        elif isinstance(event, Progress) and sys.stderr.isatty():
            print(f"\r  {event.done}/{event.total} ({event.failed} failed) "
                  f"{event.elapsed_s:.0f}s", end="", file=sys.stderr, flush=True)  # fmt: skip

    sweep = Sweep(config, vllm, on_event)
    try:
        record = await sweep.run()
    except asyncio.CancelledError:
        _keep(settings, sweep.record("cancelled"), as_json)
        raise
    saved = _keep(settings, record, as_json)
    return OK if saved.status == "done" else FAILED


def _keep(settings: Settings, record: Any, as_json: bool) -> Any:
    from vllm_console.core.bench.archive import save

    try:
        record = save(settings.runs_dir, record)
        _say(f"kept as {record.id} in {settings.runs_dir}")
    except OSError as exc:
        _say(f"cannot keep the result in {settings.runs_dir}: {exc}")
    if as_json:
        print(json.dumps(record.to_json(), indent=2), flush=True)
    return record
