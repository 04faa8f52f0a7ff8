"""`vllm-console download REPO_ID`: fetch a model from the Hugging Face hub (or the HF_ENDPOINT
mirror), or with `--from modelscope` (or VLLM_CONSOLE_HUB=modelscope) from ModelScope.

Progress goes to stderr (one rewritten line on a terminal, an occasional line otherwise), the
final folder to stdout, so `$(vllm-console download Org/Name)` gives the path. Ctrl-C stops
the download cleanly; running the same command again resumes it.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from vllm_console.config import Settings
from vllm_console.core.catalog.entry import format_bytes
from vllm_console.core.hub.download import (
    DownloadError,
    DownloadProgress,
    default_output_dir,
    download_from_modelscope,
    download_model,
    repo_id_problem,
)
from vllm_console.core.text import visible

DEFAULT_ENDPOINT = "https://huggingface.co"
MODELSCOPE_ENDPOINT = "https://www.modelscope.cn"


class ProgressPrinter:
    """Turns DownloadProgress into stderr lines that a terminal or a log can bear."""

    def __init__(self, stream: TextIO, *, tty: bool | None = None, every_s: float = 5.0) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.every_s = every_s
        self._last_line_at = 0.0
        self._last_tenth = -1
        self._rate_mark: tuple[float, int] | None = None
        self._rate = 0.0
        self._width = 0

    def __call__(self, progress: DownloadProgress) -> None:
        now = time.monotonic()
        self._update_rate(now, progress.downloaded_bytes)
        line = self.format(progress)
        if self.tty:
            columns = shutil.get_terminal_size((100, 20)).columns - 1
            line = line[:columns]
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.stream.flush()
            return
        fraction = progress.fraction()
        tenth = int(fraction * 10) if fraction is not None else -1
        finished = progress.current_file is None and fraction == 1.0
        if finished or tenth > self._last_tenth or now - self._last_line_at >= self.every_s:
            self._last_tenth, self._last_line_at = tenth, now
            self.stream.write(line + "\n")
            self.stream.flush()

    def format(self, progress: DownloadProgress) -> str:
        fraction = progress.fraction()
        parts = [f"{fraction * 100:3.0f}%" if fraction is not None else "   ?", progress.text()]
        if self._rate > 0:
            parts.append(f"{format_bytes(self._rate)}/s")
        if progress.current_file:
            parts.append(progress.current_file)
        # File names come from the hub (or a mirror): shown, never obeyed.
        return visible("  ".join(parts))

    def finish(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def _update_rate(self, now: float, done: int) -> None:
        if self._rate_mark is None:
            self._rate_mark = (now, done)
            return
        then, before = self._rate_mark
        if now - then >= 1.0:
            rate = (done - before) / (now - then)
            self._rate = rate if self._rate == 0 else 0.5 * self._rate + 0.5 * rate
            self._rate_mark = (now, done)


def cmd_download(
    settings: Settings,
    repo_id: str,
    *,
    output: Path | None = None,
    revision: str | None = None,
    to_cache: bool = False,
    source: str | None = None,
) -> int:
    problem = repo_id_problem(repo_id)
    if problem is not None:
        print(visible(f"vllm-console: {problem}"), file=sys.stderr)
        return 2
    if output is not None and to_cache:
        print("vllm-console: --output and --to-cache exclude each other", file=sys.stderr)
        return 2
    modelscope = (source or settings.hub) == "modelscope"
    output_dir: Path | None = None
    cache_dir: Path | None = None
    if to_cache:
        cache_dir = settings.modelscope_cache if modelscope else settings.hf_hub_cache
    elif output is not None:
        output_dir = output if output.is_absolute() else settings.cwd / output
    else:
        output_dir = default_output_dir(settings.cwd / "models", repo_id)
    endpoint: str | None
    if modelscope:
        where = settings.modelscope_endpoint or MODELSCOPE_ENDPOINT
        fetch, endpoint, cache_name = download_from_modelscope, where, "ModelScope"
    else:
        where = settings.hf_endpoint or DEFAULT_ENDPOINT
        fetch, endpoint, cache_name = download_model, settings.hf_endpoint, "Hugging Face"
    dest = f"the {cache_name} cache {cache_dir}" if cache_dir else str(output_dir)
    at = f" at {revision}" if revision else ""
    print(visible(f"Downloading {repo_id}{at} from {where} into {dest}"), file=sys.stderr)

    printer = ProgressPrinter(sys.stderr)
    cancel = threading.Event()
    outcome: list[Path | BaseException] = []

    def run() -> None:
        try:
            outcome.append(
                fetch(
                    repo_id,
                    endpoint=endpoint,
                    revision=revision,
                    output_dir=output_dir,
                    cache_dir=cache_dir,
                    on_progress=printer,
                    cancel=cancel,
                )
            )
        except BaseException as exc:  # handed to the main thread below
            outcome.append(exc)

    # The download runs in a thread so that Ctrl-C here only sets `cancel`: the workers stop at
    # their next chunk and keep their partial files for the next run.
    worker = threading.Thread(target=run, name="download", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        cancel.set()
        printer.finish()
        print("vllm-console: stopping; run the same command again to resume", file=sys.stderr)
        worker.join()
        return 130
    printer.finish()
    result = outcome[0]
    if isinstance(result, DownloadError):
        print(visible(f"vllm-console: {result}"), file=sys.stderr)
        return 1
    if isinstance(result, BaseException):
        raise result
    # `$(vllm-console download ...)` needs the true path; a person at a terminal sees it escaped.
    print(visible(str(result)) if sys.stdout.isatty() else result)
    return 0
