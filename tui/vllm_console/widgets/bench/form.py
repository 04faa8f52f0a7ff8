"""The Bench tab's form: concurrency levels, prompts, lengths, arrival rate, dataset and who
runs the load.

`BenchForm.values()` reads and checks the fields (`core.bench.form`, the same checks as the
command's flags): a bad one raises `BadArgument` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select

from vllm_console.core.bench.form import (
    MAX_LEN,
    MAX_PROMPTS,
    BadArgument,
    parse_burstiness,
    parse_count,
    parse_dataset,
    parse_levels,
    parse_rate,
)

DATASETS = [("random prompts", "random"), ("ShareGPT file", "sharegpt")]
CLIENTS = [
    ("auto: vllm bench serve if here", "auto"),
    ("the console's client", "console"),
    ("vllm bench serve", "vllm"),
]


@dataclass(frozen=True)
class FormValues:
    levels: tuple[int, ...]
    num_prompts: int
    input_len: int
    output_len: int
    dataset: str
    dataset_path: Path | None
    client: str
    request_rate: float
    burstiness: float


class BenchForm(Vertical):
    """The fields of one benchmark; their defaults are the command's."""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="bench-row"):
            yield Label("Concurrency", classes="bench-label")
            yield Input("1,4,16", restrict=r"[0-9, ]*", id="bench-levels", compact=True)
            yield Label("Prompts", classes="bench-label")
            yield Input("64", restrict=r"[0-9_,]*", id="bench-prompts", compact=True)
        with Horizontal(classes="bench-row"):
            yield Label("Input tokens", classes="bench-label")
            yield Input("1024", restrict=r"[0-9_,]*", id="bench-input-len", compact=True)
            yield Label("Output tokens", classes="bench-label")
            yield Input("128", restrict=r"[0-9_,]*", id="bench-output-len", compact=True)
        with Horizontal(classes="bench-row"):
            yield Label("Requests/s", classes="bench-label")
            yield Input("inf", restrict=r"[0-9._a-zA-Z]*", id="bench-rate", compact=True)
            yield Label("Burstiness", classes="bench-label")
            yield Input("1", restrict=r"[0-9._a-zA-Z]*", id="bench-burstiness", compact=True)
        with Horizontal(classes="bench-row"):
            yield Select(DATASETS, value="random", allow_blank=False, id="bench-dataset",
                         compact=True)  # fmt: skip
            yield Input(placeholder="ShareGPT JSON file", id="bench-path", compact=True)
        with Horizontal(classes="bench-row"):
            yield Label("Load by", classes="bench-label")
            yield Select(CLIENTS, value="auto", allow_blank=False, id="bench-client", compact=True)

    def on_mount(self) -> None:
        self.query_one("#bench-path").display = False

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "bench-dataset":
            self.query_one("#bench-path").display = event.value == "sharegpt"

    def _text(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value

    def values(self) -> FormValues:
        """The fields, checked; BadArgument naming the first bad one."""
        dataset = str(self.query_one("#bench-dataset", Select).value)
        words = [dataset] if dataset == "random" else [dataset, self._text("bench-path").strip()]
        if words[1:] == [""]:
            raise BadArgument("ShareGPT file: give its path")
        kind, path = parse_dataset(words, "Dataset")
        return FormValues(
            levels=parse_levels(self._text("bench-levels"), "Concurrency"),
            num_prompts=parse_count("Prompts", self._text("bench-prompts"), MAX_PROMPTS),
            input_len=parse_count("Input tokens", self._text("bench-input-len"), MAX_LEN),
            output_len=parse_count("Output tokens", self._text("bench-output-len"), MAX_LEN),
            dataset=kind,
            dataset_path=path,
            client=str(self.query_one("#bench-client", Select).value),
            request_rate=parse_rate(self._text("bench-rate"), "Requests/s"),
            burstiness=parse_burstiness(self._text("bench-burstiness"), "Burstiness"),
        )

    def set_enabled(self, enabled: bool) -> None:
        """Fields are read-only while a benchmark runs."""
        for field in self.query("Input, Select"):
            field.disabled = not enabled
