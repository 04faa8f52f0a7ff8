"""The details pane: everything the catalog knows about the selected model.

It receives a `ModelEntry` as an attribute (data flows down) and renders it; it reads no
files itself. Colours come from details.tcss through the classes of its parts.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static

from vllm_console.core.catalog.entry import ModelEntry, Source, format_bytes, format_tokens
from vllm_console.core.text import visible

if TYPE_CHECKING:
    from vllm_console.core.gpu.fit import Fit

MAX_FILES_SHOWN = 12
KEY_WIDTH = 13


def _rows(pairs: Iterable[tuple[str, str | None]]) -> Content:
    """Aligned `key  value` lines; pairs whose value is None are left out.

    Values come from folder names and config files: control characters are shown as escapes.
    """
    lines = [
        Content.assemble((f"{key:<{KEY_WIDTH}}", "bold"), visible(value))
        for key, value in pairs
        if value is not None
    ]
    return Content("\n").join(lines)


def _int(value: int | None) -> str | None:
    return None if value is None else str(value)


def location_text(entry: ModelEntry) -> Content:
    return _rows(
        [
            ("Path", str(entry.path)),
            ("Found in", entry.found_how),
            ("Format", str(entry.format) if entry.detailed else None),
            ("Size", entry.size_text() if entry.detailed else None),
        ]
    )


def config_text(entry: ModelEntry) -> Content:
    meta = entry.meta
    return _rows(
        [
            ("Architecture", meta.architecture),
            ("Model type", meta.model_type),
            ("Parameters", _params(entry)),
            ("Layers", _int(meta.num_layers)),
            ("KV heads", _int(meta.num_kv_heads)),
            ("Head dim", _int(meta.head_dim)),
            (
                "Context",
                f"{format_tokens(meta.context_length)} tokens" if meta.context_length else None,
            ),
            ("Dtype", meta.dtype),
            ("Stored as", meta.storage if meta.storage != meta.dtype else None),
            ("Quantization", meta.quantization),
        ]
    )


def _params(entry: ModelEntry) -> str | None:
    """The parameters, and beside them the bytes vLLM loads when the files say."""
    meta = entry.meta
    if meta.params is None:
        return None
    if meta.stored_bytes is None:
        return entry.params_text()
    return f"{entry.params_text()} ({format_bytes(meta.stored_bytes)} of weights)"


def weights_text(entry: ModelEntry) -> Content:
    """The files vLLM loads, then each other weight-like file with why it is not loaded."""
    lines = [Content(visible(name)) for name in entry.weight_files[:MAX_FILES_SHOWN]]
    hidden = len(entry.weight_files) - len(lines)
    if hidden > 0:
        lines.append(Content(f"… and {hidden} more"))
    for name, why in entry.ignored_files[:MAX_FILES_SHOWN]:
        lines.append(Content.assemble(("ignored ", "bold"), visible(f"{name}: {why}")))
    hidden = len(entry.ignored_files) - MAX_FILES_SHOWN
    if hidden > 0:
        lines.append(Content(f"… and {hidden} more ignored"))
    return Content("\n").join(lines)


def revisions_text(entry: ModelEntry) -> Content:
    """A cache repo's snapshots: commit, the refs naming it, size. A ModelScope model's
    revisions are named (`master`, `v1.0.1`): no refs point at them."""
    lines = []
    hub = entry.source is Source.HF_CACHE
    for revision in entry.revisions:
        refs = ", ".join(revision.refs) or ("(no ref)" if hub else "")
        size = f"  {format_bytes(revision.size_bytes)}" if revision.size_bytes is not None else ""
        size = size if refs else size.lstrip()
        # The gap belongs to the bold run: a run that starts with spaces loses them in
        # some SVG renderers (the screenshots), gluing the commit to its ref.
        commit = visible(f"{revision.commit[:12] if hub else revision.commit}  ")
        lines.append(Content.assemble((commit, "bold"), visible(f"{refs}{size}")))
    return Content("\n").join(lines)


def files_text(entry: ModelEntry) -> Content:
    shown = [Content(visible(name)) for name in entry.files[:MAX_FILES_SHOWN]]
    hidden = len(entry.files) - len(shown)
    if hidden > 0:
        shown.append(Content(f"… and {hidden} more"))
    return Content("\n").join(shown)


def problems_text(entry: ModelEntry) -> Content:
    return Content("\n").join(Content(visible(f"⚠ {problem}")) for problem in entry.problems)


class ModelDetails(VerticalScroll):
    """Path, how it was found, config highlights, revisions, files and problems."""

    DEFAULT_CSS = Path(__file__).with_name("details.tcss").read_text(encoding="utf-8")
    SCOPED_CSS = False  # a rule for narrow screens starts at the Screen (see details.tcss)

    entry: reactive[ModelEntry | None] = reactive(None, recompose=True)
    fit: reactive[Fit | None] = reactive(None, recompose=True)
    """Whether the entry fits the GPUs as the settings would launch it; None: no GPU known."""

    def compose(self) -> ComposeResult:
        entry = self.entry
        if entry is None:
            yield Static("No model selected.", classes="details-hint")
            return
        yield Static(Content(visible(entry.id)), classes="details-title")
        yield Static(location_text(entry), classes="details-block")
        if not entry.detailed:
            yield Static("Reading config and sizes…", classes="details-hint")
            return
        if entry.problems:
            yield Static("Problems", classes="details-heading")
            yield Static(problems_text(entry), classes="details-block details-problems")
        if self.fit is not None:
            yield Static("Fit on the GPUs", classes="details-heading")
            fit = Content("\n").join(Content(visible(line)) for line in self.fit.lines())
            yield Static(fit, classes="details-block")
        config = config_text(entry)
        if config:
            yield Static("Config", classes="details-heading")
            yield Static(config, classes="details-block")
        if entry.source is not Source.FOLDER and entry.revisions:
            yield Static("Revisions", classes="details-heading")
            yield Static(revisions_text(entry), classes="details-block")
        if entry.weight_files or entry.ignored_files:
            heading = f"Weights vLLM loads ({len(entry.weight_files)})"
            yield Static(heading, classes="details-heading")
            yield Static(weights_text(entry), classes="details-block details-files")
        if entry.files:
            yield Static(f"Files ({len(entry.files)})", classes="details-heading")
            yield Static(files_text(entry), classes="details-block details-files")
