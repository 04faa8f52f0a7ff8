"""A benchmark written out for a person or a spreadsheet: Markdown, CSV or JSON, the format
chosen by the file's name (`.md`, `.csv`, `.json`).

JSON is the archive's record, true strings and all. Markdown shows the text that came from the
server or the user (model names, errors, findings) with control characters as escapes
(`core.text.visible`) and table pipes escaped; CSV quotes as the `csv` module does, and a text
cell that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`) starts with a quote.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from vllm_console.core.bench.arrivals import describe_rate
from vllm_console.core.bench.stats import StepResult
from vllm_console.core.text import visible

if TYPE_CHECKING:
    from vllm_console.core.bench.sweep import BenchRecord

FORMATS = {".md": "Markdown", ".markdown": "Markdown", ".csv": "CSV", ".json": "JSON"}
# (heading, the step's figure, its format): the Markdown table's and the CSV's columns
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("concurrency", "concurrency", "{:d}"),
    ("completed", "completed", "{:d}"),
    ("failed", "failed", "{:d}"),
    ("req/s", "request_throughput", "{:.2f}"),
    ("output tok/s", "output_throughput", "{:.1f}"),
    ("total tok/s", "total_token_throughput", "{:.1f}"),
    ("TTFT p50 ms", "ttft_p50_ms", "{:.1f}"),
    ("TTFT p99 ms", "ttft_p99_ms", "{:.1f}"),
    ("TPOT p50 ms", "tpot_p50_ms", "{:.2f}"),
    ("ITL p50 ms", "itl_p50_ms", "{:.2f}"),
    ("ITL p99 ms", "itl_p99_ms", "{:.2f}"),
    ("E2EL p50 ms", "e2el_p50_ms", "{:.1f}"),
)


class ExportError(Exception):
    """The file cannot be written, or its name gives no format; the message says which."""


def format_of(path: Path) -> str:
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise ExportError(f"{visible(path.name)}: end the name in .md, .csv or .json")
    return found


def figures(step: StepResult) -> list[str]:
    return [fmt.format(getattr(step, name)) for _, name, fmt in COLUMNS]


def to_markdown(record: BenchRecord) -> str:
    def cell(text: str) -> str:
        return visible(text).replace("|", "\\|")

    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.started))
    cfg = record.config
    lines = [
        f"# Benchmark of {cell(record.model or 'the endpoint')}",
        "",
        f"- endpoint: {cell(cfg.base_url)} (vLLM {cell(record.server_version or '?')})",
        f"- started: {when}; status: {cell(record.status)}; load by: {cell(record.source or '-')}",
        f"- {cfg.num_prompts} prompts per level, {cfg.input_len} tokens in, "
        f"{cfg.output_len} out, dataset {cell(cfg.dataset)}, arriving "
        f"{describe_rate(cfg.request_rate, cfg.burstiness)}",
    ]
    if cfg.launch_argv:
        lines.append(f"- launched as: `{cell(' '.join(cfg.launch_argv))}`")
    lines += ["", "| " + " | ".join(h for h, _, _ in COLUMNS) + " | server check |"]
    lines.append("|" + "---:|" * len(COLUMNS) + "---|")
    for step in record.steps:
        check = cell(step.mismatch) if step.mismatch else "ok" if step.server else "-"
        lines.append("| " + " | ".join(figures(step)) + f" | {check} |")
    if record.findings:
        lines += ["", "## Findings", ""] + [f"- {cell(f)}" for f in record.findings]
    return "\n".join(lines) + "\n"


def to_csv(record: BenchRecord) -> str:
    def safe(text: str) -> str:
        return "'" + text if text[:1] in ("=", "+", "-", "@") else text

    out = io.StringIO()
    writer = csv.writer(out)  # CRLF rows, RFC 4180: every CR or LF inside a cell is quoted
    writer.writerow(["model", "source", *(name for _, name, _ in COLUMNS), "server_requests",
                     "server_generation_tokens", "mismatch"])  # fmt: skip
    for step in record.steps:
        server = step.server
        writer.writerow([
            safe(record.model or ""), safe(step.source), *figures(step),
            "" if server is None or server.requests is None else f"{server.requests:.0f}",
            "" if server is None or server.generation_tokens is None
            else f"{server.generation_tokens:.0f}",
            safe(step.mismatch or ""),
        ])  # fmt: skip
    return out.getvalue()


def render(record: BenchRecord, fmt: str) -> str:
    if fmt == "JSON":
        return json.dumps(record.to_json(), indent=2) + "\n"
    return to_csv(record) if fmt == "CSV" else to_markdown(record)


def export(record: BenchRecord, path: Path) -> tuple[Path, str]:
    """Write `record` to `path` in the format its name says: (the absolute path, the format)."""
    fmt = format_of(path)
    target = path.expanduser().absolute()
    try:
        target.write_text(render(record, fmt), encoding="utf-8", newline="")
    except OSError as exc:
        raise ExportError(f"cannot write {visible(str(target))}: {exc.strerror or exc}") from None
    return target, fmt
