"""The launch dialog's GPU choice: a checkbox per GPU, the checked ones the launch's GPUs.

The boxes come from the GPU strip's first snapshot that has GPUs, each labelled with its
index, name and free memory as NVML reports it (what other processes hold is already used),
and the labels follow later snapshots. The checked GPUs become the spec's `gpus`, and so
CUDA_VISIBLE_DEVICES; with none checked (or no GPU at all) the server inherits its GPUs.
GPUs a saved spec names that are not here any more are dropped.
"""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Checkbox, Label, Static

from vllm_console.core.gpu.nvml import GpuSnapshot
from vllm_console.core.gpu.samples import GpuSample, gib_text
from vllm_console.core.text import visible


def gpu_label(gpu: GpuSample) -> Content:
    """The box's label, e.g. `0 · 79.0 GiB free · H100 80GB HBM3`: the free memory before the
    name, which a narrow dialog cuts short (shown, never obeyed)."""
    name = (gpu.name or "GPU").removeprefix("NVIDIA ")
    return Content(visible(f"{gpu.index} · {gib_text(gpu.memory_free)} free · {name}"))


class GpuPicker(Horizontal):
    """A checkbox per GPU of the first snapshot that has GPUs (their labels follow later ones);
    `chosen` is the checked indices, None when none is: the launch inherits its GPUs."""

    class Changed(Message):
        """The checked GPUs changed (None: none is checked)."""

        def __init__(self, chosen: tuple[int, ...] | None) -> None:
            super().__init__()
            self.chosen = chosen

    DEFAULT_CSS = Path(__file__).with_name("launch_pick.tcss").read_text(encoding="utf-8")

    def __init__(self, chosen: tuple[int, ...] | None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.chosen = chosen
        self._labels: dict[int, Content] = {}
        self._said = ""

    def compose(self) -> ComposeResult:
        yield Label("GPUs", classes="launch-label")
        with Vertical(id="gpu-pick-body"):
            yield Grid(id="gpu-pick-boxes")
            yield Static("looking…", id="gpu-pick-note")

    def show(self, snapshot: GpuSnapshot | None) -> None:
        """The snapshot's GPUs: boxes the first time there are any, fresh labels after."""
        if snapshot is None:
            return
        if not self._labels and not snapshot.available:
            self._choose(None)
            self._note(f"none to choose: {snapshot.reason}. The server inherits its GPUs.")
            return
        labels = {gpu.index: gpu_label(gpu) for gpu in snapshot.devices}
        if not self._labels:
            self._labels = labels
            boxes = self.query_one("#gpu-pick-boxes", Grid)
            boxes.mount_all(
                Checkbox(label, i in (self.chosen or ()), id=f"gpu-pick-{i}")
                for i, label in labels.items()
            )
            self._choose(tuple(i for i in self.chosen or () if i in labels) or None)
            return
        for index, label in labels.items():
            if index in self._labels and label != self._labels[index]:
                self._labels[index] = label
                self.query_one(f"#gpu-pick-{index}", Checkbox).label = label

    def _choose(self, chosen: tuple[int, ...] | None) -> None:
        if chosen is not None:
            self._note(f"checked: CUDA_VISIBLE_DEVICES={','.join(map(str, chosen))}")
        elif self._labels:
            self._note("none checked: the server inherits its GPUs")
        if chosen != self.chosen:
            self.chosen = chosen
            self.post_message(self.Changed(chosen))

    def _note(self, text: str) -> None:
        if text != self._said:  # a snapshot a second: re-render only what changed
            self._said = text
            self.query_one("#gpu-pick-note", Static).update(Content(visible(text)))

    @on(Checkbox.Changed)
    def _box_changed(self, event: Checkbox.Changed) -> None:
        event.stop()  # the dialog hears of the GPUs, not of one box
        checked = tuple(
            index for index in self._labels if self.query_one(f"#gpu-pick-{index}", Checkbox).value
        )
        self._choose(checked or None)
