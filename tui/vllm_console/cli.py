"""Command line: parse arguments, build Settings once, run a headless command or the console.

Heavy modules (textual, huggingface_hub) are imported only by the command that needs them,
so `vllm-console models` stays quick and the console's first frame is not delayed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vllm_console import __version__, compat
from vllm_console.config import ConfigError, EnvFileError, Settings, settings_from_process
from vllm_console.core.text import visible

if TYPE_CHECKING:
    from vllm_console.core.fleet.model import Member

# Set to a file path, the console writes time.time() there after its first frame and exits:
# bench/bench_first_frame.py measures startup with it.
FIRST_FRAME_ENV = "VLLM_CONSOLE_EXIT_AFTER_FIRST_FRAME"

# Flags shared by every command, mapped to the settings key they override.
SETTING_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("--base-url", "VLLM_BASE_URL", "OpenAI-compatible endpoint URL"),
    ("--api-key", "VLLM_API_KEY", "API key for the endpoint"),
    ("--hf-endpoint", "HF_ENDPOINT", "Hugging Face hub or mirror URL"),
    ("--hf-cache", "HF_HUB_CACHE", "Hugging Face hub cache folder"),
    ("--model-dirs", "VLLM_CONSOLE_MODEL_DIRS", "extra model folders, separated by ':'"),
    ("--host", "VLLM_CONSOLE_HOST", "host a launched server listens on"),
    ("--port", "VLLM_CONSOLE_PORT", "port a launched server listens on"),
    ("--gpu-memory-utilization", "VLLM_CONSOLE_GPU_MEMORY_UTILIZATION", "fraction (0-1]"),
    ("--max-model-len", "VLLM_CONSOLE_MAX_MODEL_LEN", "max model length for launches"),
)


def _dest(flag: str) -> str:
    return "setting_" + flag.lstrip("-").replace("-", "_")


def _common_parser(without: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    # SUPPRESS: a flag given before the command must not be reset by the command's own copy.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    group = common.add_argument_group("settings (override .env and the environment)")
    group.add_argument("--env-file", type=Path, help="read settings from this file, not ./.env")
    group.add_argument(
        "--served-model",
        dest="setting_model",
        metavar="NAME",
        help="model name clients send (VLLM_MODEL)",
    )
    for flag, _key, help_text in SETTING_FLAGS:
        if flag not in without:
            group.add_argument(flag, dest=_dest(flag), metavar="VALUE", help=help_text)
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_parser()

    parser = argparse.ArgumentParser(
        prog="vllm-console",
        description="A terminal console for serving LLMs with vLLM on your own GPUs.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"vllm-console {__version__}")
    parser.add_argument(
        "--fleet",
        type=Path,
        metavar="FILE",
        help="open the console with a fleet file's servers (local ones launched)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("models", parents=[common], help="list the models found on disk")
    p.add_argument("--json", action="store_true", help="print a JSON list")

    p = sub.add_parser("resolve", parents=[common], help="show where a model name resolves to")
    p.add_argument("name", help="a path, an Org/Name hub id, or a folder name")
    p.add_argument("--json", action="store_true", help="print a JSON object")

    p = sub.add_parser("download", parents=[common], help="download a model from the hub")
    p.add_argument("repo_id", help="Org/Name on the hub (or the mirror in HF_ENDPOINT)")
    p.add_argument("--output", type=Path, help="folder to download into (default models/Org--Name)")
    p.add_argument("--revision", help="branch, tag or commit (default main)")
    p.add_argument("--to-cache", action="store_true", help="download into the hub's cache")
    p.add_argument(
        "--from",
        dest="source",
        choices=("huggingface", "modelscope"),
        help="the hub to download from (default VLLM_CONSOLE_HUB, else huggingface)",
    )
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="launch vLLM on a model and stream its log",
        epilog="Arguments after -- go to vllm serve unchanged.",
    )
    p.add_argument("model", nargs="?", help="path, Org/Name, or a folder name")
    p.add_argument("--model", dest="model_flag", metavar="MODEL", help="same as MODEL")
    p.add_argument("--served-model-name", help="name clients use (default VLLM_MODEL or MODEL)")
    p.add_argument("--enforce-eager", action="store_true", help="disable CUDA graphs")
    p.add_argument(
        "--safe-mode",
        action="store_true",
        help="no torch.compile, eager, utilization 0.4, max model length 512",
    )
    p.add_argument("--dtype", help="auto, bfloat16, float16, ...")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="GPUs to shard over")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code")
    p = sub.add_parser("up", parents=[common], help="run every server of a fleet file")
    p.add_argument("file", type=Path, help="a fleet file (YAML, one entry per server)")
    p = sub.add_parser("ps", parents=[common], help="list the servers running on this machine")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p = sub.add_parser("stop", parents=[common], help="stop a running server (see ps)")
    p.add_argument("name", nargs="?", help="its name or run id")
    p.add_argument("--all", dest="stop_all", action="store_true", help="stop every server")
    p = sub.add_parser("runs", parents=[common], help="list past launches and their logs")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--log", metavar="RUN_ID", help="print the full log of one run")
    p = sub.add_parser("doctor", parents=[common], help="check vLLM, GPUs, cache, endpoints, port")
    p.add_argument("--json", action="store_true", help="print a JSON list of checks")
    p = sub.add_parser("gpus", parents=[common], help="GPU memory, load and processes")
    p.add_argument(
        "--json", action="store_true", help="print JSON (one object a line with --watch)"
    )
    p.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    p.add_argument(
        "--interval", type=float, default=0.5, help="seconds between refreshes (>= 0.25)"
    )
    p = sub.add_parser("chat", parents=[common], help="send one prompt to the endpoint, stream")
    p.add_argument("prompt", help="the user message")
    p.add_argument("--model", dest="chat_model", help="model to ask (default VLLM_MODEL)")
    p.add_argument("--system", help="a system prompt")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.add_argument("--max-tokens", type=int, help="limit the answer's length")
    p.add_argument("--temperature", type=float, help="sampling temperature")
    from vllm_console.commands.bench import add_parser

    add_parser(sub, common)
    # --host and --port are the web server's here (a launch's: before the command).
    p = sub.add_parser(
        "web",
        parents=[_common_parser(without=("--host", "--port"))],
        help="serve the console to a browser, behind a token",
    )
    p.add_argument(
        "--host", dest="web_host", metavar="HOST", default="127.0.0.1", help="listen on (127.0.0.1)"
    )
    p.add_argument(
        "--port", dest="web_port", metavar="PORT", type=int, default=8022, help="listen on (8022)"
    )
    p.add_argument(
        "--keep-servers", action="store_true", help="on Ctrl-C, leave the servers running"
    )
    return parser


def setting_overrides(args: argparse.Namespace) -> dict[str, str]:
    """The settings the command line gave, by their keys."""
    given = {"VLLM_MODEL": getattr(args, "setting_model", None)}
    for flag, key, _help in SETTING_FLAGS:
        given[key] = getattr(args, _dest(flag), None)
    return {key: value for key, value in given.items() if value is not None}


def settings_from_args(args: argparse.Namespace) -> Settings:
    cli: dict[str, str | None] = {**setting_overrides(args)}
    return settings_from_process(cli=cli, env_file=getattr(args, "env_file", None))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args = parser.parse_args(argv)
    if getattr(args, "fleet", None) is not None and args.command is not None:
        parser.error(  # exits 2, as any other bad argument does
            f"--fleet opens the console with a fleet file's servers, not '{args.command}' "
            "(to run a fleet file without the console: vllm-console up FILE)"
        )
    args.extra = extra
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        said = f"bad setting {exc.key}={exc.value!r} (from {exc.origin}): {exc.reason}"
        print(visible(f"vllm-console: {said}"), file=sys.stderr)
        return 2
    except EnvFileError as exc:
        where = f"{exc.path} line {exc.line_no}" if exc.line_no else str(exc.path)
        shown = f": {exc.line.strip()!r}" if exc.line else ""
        print(visible(f"vllm-console: cannot read {where}: {exc.reason}{shown}"), file=sys.stderr)
        return 2
    except OSError as exc:
        print(visible(f"vllm-console: cannot read settings: {exc}"), file=sys.stderr)
        return 2
    try:
        return run_command(args, settings)
    except KeyboardInterrupt:
        return 130


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "models":
        from vllm_console.commands.models import cmd_models

        return cmd_models(settings, as_json=args.json)
    if args.command == "resolve":
        from vllm_console.commands.resolve import cmd_resolve

        return cmd_resolve(settings, args.name, as_json=args.json)
    if args.command == "download":
        from vllm_console.commands.download import cmd_download

        return cmd_download(
            settings,
            args.repo_id,
            output=args.output,
            revision=args.revision,
            to_cache=args.to_cache,
            source=args.source,
        )
    if args.command == "doctor":
        from vllm_console.commands.doctor import cmd_doctor

        return cmd_doctor(settings, as_json=args.json)
    if args.command == "gpus":
        from vllm_console.commands.gpus import cmd_gpus

        return cmd_gpus(settings, as_json=args.json, watch=args.watch, interval=args.interval)
    if args.command == "chat":
        from vllm_console.commands.chat import cmd_chat

        return cmd_chat(
            settings,
            args.prompt,
            model=args.chat_model,
            system=args.system,
            as_json=args.json,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
        )
    if args.command == "up":
        from vllm_console.commands.up import cmd_up

        return cmd_up(settings, args.file)
    if args.command == "ps":
        from vllm_console.commands.ps import cmd_ps

        return cmd_ps(settings, as_json=args.json)
    if args.command == "stop":
        from vllm_console.commands.ps import cmd_stop

        return cmd_stop(settings, args.name, every=args.stop_all)
    if args.command == "runs":
        from vllm_console.commands.runs import cmd_runs

        return cmd_runs(settings, as_json=args.json, log_id=args.log)
    if args.command == "bench":
        from vllm_console.commands.bench import cmd_bench

        return cmd_bench(settings, args)
    if args.command == "serve":
        from vllm_console.commands.serve import ServeOptions, cmd_serve

        model = args.model_flag or args.model
        if not model:
            print("vllm-console serve: name a model (MODEL or --model)", file=sys.stderr)
            return 2
        opts = ServeOptions(
            model=model,
            served_model_name=args.served_model_name,
            enforce_eager=args.enforce_eager,
            safe_mode=args.safe_mode,
            dtype=args.dtype,
            tensor_parallel_size=args.tensor_parallel_size,
            trust_remote_code=args.trust_remote_code,
            extra_args=shlex.join(args.extra),
        )
        return cmd_serve(settings, opts)
    if args.command == "web":
        from vllm_console.web.server import WebOptions, cmd_web

        options = WebOptions(args.web_host, args.web_port, keep_servers=args.keep_servers)
        env_file = getattr(args, "env_file", None)
        return cmd_web(settings, options, overrides=setting_overrides(args), env_file=env_file)
    return run_console(settings, getattr(args, "fleet", None))


def read_fleet(path: Path, settings: Settings) -> tuple[Member, ...] | None:
    """The fleet file's members; None (every problem said) when it cannot be used."""
    from vllm_console.core.fleet.file import (
        FleetFileError,
        load_fleet,
    )

    try:
        members: tuple[Member, ...] = load_fleet(path, settings).members
    except FleetFileError as exc:
        for problem in exc.problems:
            print(visible(f"vllm-console: {problem}"), file=sys.stderr)
        return None
    return members


def run_console(settings: Settings, fleet: Path | None = None) -> int:
    """Run the console until the user quits; the exit status. `fleet`: a fleet file, read
    (and refused with exit status 2, its problems said) before the console starts."""
    members = read_fleet(fleet, settings) if fleet is not None else ()
    if members is None:
        return 2
    compat.gc_off_for_imports()
    from vllm_console.app import VllmConsoleApp

    compat.gc_freeze_imports()
    marker = os.environ.get(FIRST_FRAME_ENV)
    app = VllmConsoleApp(
        settings,
        first_frame_file=Path(marker) if marker else None,
        check_leftovers=True,
        members=members,
    )
    app.run()
    return app.return_code or 0
