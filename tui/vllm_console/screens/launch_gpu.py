"""The launch dialog's GPU lines: will this spec fit the chosen GPUs, and what is in the way.

`fit_lines` is pure: the catalog entry, the spec the
fields describe, the snapshot, CUDA_VISIBLE_DEVICES and the memory the console's other
servers hold on each GPU give the verdict with its reason, a warning for each chosen GPU
another server shares where this launch will not fit beside it, the estimate, the largest
max model length that fits and the utilization needed, plus a warning for each leftover vLLM
process holding GPU memory (which the free memory, and so the verdict, already counts).
`GpuFitView` shows them and follows field changes and new snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from textual.content import Content
from textual.widgets import Static

from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.core.gpu.fit import Fit, Verdict, visible_gpus, will_it_fit
from vllm_console.core.gpu.nvml import GpuSnapshot
from vllm_console.core.gpu.overlap import Overlap, beside, overlaps
from vllm_console.core.gpu.owners import Holder, leftover_holders
from vllm_console.core.serve.spec import LaunchSpec
from vllm_console.core.text import visible

VERDICT_STYLE = {
    Verdict.FITS: "bold $text-success",
    Verdict.TIGHT: "bold $text-warning",
    Verdict.WONT_FIT: "bold $text-error",
}


def cuda_visible(spec: LaunchSpec, environ: Mapping[str, str]) -> str | None:
    """The CUDA_VISIBLE_DEVICES the launch will run with: the checked GPUs, else the spec's
    own variable, else the inherited one (as `launch_env` builds it)."""
    if spec.gpus is not None:
        return ",".join(map(str, spec.gpus))
    return spec.extra_env.get("CUDA_VISIBLE_DEVICES", environ.get("CUDA_VISIBLE_DEVICES"))


def fit_for(
    entry: ModelEntry | None,
    spec: LaunchSpec | None,
    snapshot: GpuSnapshot | None,
    environ: Mapping[str, str],
    held: Mapping[int, int],
) -> Fit | None:
    """The verdict for the GPUs the launch would see, less what the other servers hold on
    them; None until there is something to judge."""
    if entry is None or spec is None or snapshot is None:
        return None
    devices = snapshot.devices if snapshot.available else ()
    chosen = visible_gpus(devices, cuda_visible(spec, environ))
    return will_it_fit(entry, spec, beside(chosen, held))


def overlaps_for(
    spec: LaunchSpec | None,
    snapshot: GpuSnapshot | None,
    environ: Mapping[str, str],
    held: Mapping[int, int],
) -> list[Overlap]:
    """The launch's GPUs that another server shares and where this launch will not fit."""
    if spec is None or snapshot is None or not snapshot.available or not held:
        return []
    chosen = visible_gpus(snapshot.devices, cuda_visible(spec, environ))
    used = max(1, spec.tensor_parallel_size) * max(1, spec.pipeline_parallel_size)
    return overlaps(chosen[:used], held, spec.gpu_memory_utilization)


def fit_lines(
    fit: Fit | None,
    leftovers: list[Holder],
    snapshot: GpuSnapshot | None,
    shared: list[Overlap] | None = None,
) -> Content:
    if snapshot is None:
        return Content("GPUs: looking…")
    parts: list[Content] = []
    head, *rest = fit.lines() if fit is not None else [""]
    if fit is not None:
        style = VERDICT_STYLE.get(fit.verdict, "bold $text-muted")
        verdict, _, reason = head.partition(": ")
        reason = reason.removeprefix(f"{verdict}: ")  # "no GPU: no GPU: ..." reads once
        parts.append(Content.assemble(("Fit: ", "bold"), (verdict, style), f" — {reason}"))
    elif not snapshot.available:
        parts.append(Content(visible(f"No GPU — {snapshot.reason}")))
    for overlap in shared or ():  # right under the verdict: vLLM will refuse to start
        parts.append(Content.assemble(("⚠ shared ", "bold $text-error"), overlap.describe()))
    parts.extend(Content(visible(line)) for line in rest)
    for holder in leftovers:
        parts.append(
            Content.assemble(
                ("⚠ leftover vLLM: ", "bold $text-warning"),
                visible(holder.describe()),  # a process's name: shown, never obeyed
                " — ctrl+g kills it" if holder.pid is not None else "",
            )
        )
    return Content("\n").join(parts)


class GpuFitView(Static):
    """The fit and the leftovers, under the fields; re-rendered only when they change."""

    DEFAULT_CSS = Path(__file__).with_name("launch_gpu.tcss").read_text(encoding="utf-8")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("GPUs: looking…", id=id)
        self.fit: Fit | None = None
        self.leftovers: list[Holder] = []
        self.overlaps: list[Overlap] = []
        self._shown: tuple[object, ...] | None = None

    def show(
        self,
        entry: ModelEntry | None,
        spec: LaunchSpec | None,
        snapshot: GpuSnapshot | None,
        environ: Mapping[str, str],
        held: Mapping[int, int],
    ) -> None:
        key = (id(entry), spec, snapshot.time if snapshot else None, tuple(held.items()))
        if key == self._shown:
            return
        self._shown = key
        self.fit = fit_for(entry, spec, snapshot, environ, held)
        self.overlaps = overlaps_for(spec, snapshot, environ, held)
        self.leftovers = leftover_holders(snapshot) if snapshot and snapshot.available else []
        self.update(fit_lines(self.fit, self.leftovers, snapshot, self.overlaps))
        wont = self.fit is not None and self.fit.verdict is Verdict.WONT_FIT
        self.set_class(wont or bool(self.overlaps), "-wont-fit")
        self.set_class(bool(self.leftovers), "-leftovers")
