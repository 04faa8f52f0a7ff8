"""The model browser's data side: the catalog scan and the fit verdicts, off the UI thread.

`CatalogFeed` is the base of `ModelBrowser`. It keeps the entries by key, filled by a thread
worker: the fast listing first, then each entry detailed (metadata, sizes, problems), posted
in batches at most every `BATCH_INTERVAL` s, so the table changes a few times a second however
many models there are. Until a rescan's details arrive, an entry keeps what the earlier scan
learned (no flicker to "…"); a rescan starts a new generation, and messages of an older one
are dropped. With GPUs known, each detailed entry's fit is worked out in a thread worker too
(`fits.py`). What is shown is the subclass's business: it implements `_refresh_rows`,
`_post_catalog` and `select`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.worker import get_current_worker

from vllm_console.config import Settings
from vllm_console.core.catalog.entry import ModelEntry, Source
from vllm_console.core.catalog.ggufsets import split_quant_id
from vllm_console.core.catalog.port import Catalog, ScanLike, default_catalog, iter_detailed
from vllm_console.core.text import visible
from vllm_console.widgets.models.fits import FitJob, GpuFits, work_out_fits
from vllm_console.widgets.worker_errors import ReportsWorkerErrors

if TYPE_CHECKING:
    from vllm_console.core.gpu.fit import Fit
    from vllm_console.core.gpu.nvml import GpuSnapshot

# Detailed entries are applied to the table at most this often (seconds).
BATCH_INTERVAL = 0.25


class CatalogFeed(ReportsWorkerErrors, Vertical):
    """The entries of the catalog and their fits, as the workers find them."""

    class Listed(Message):
        """Worker -> browser: the fast listing of scan number `generation`."""

        bubble = False

        def __init__(self, generation: int, result: ScanLike) -> None:
            super().__init__()
            self.generation, self.result = generation, result

    class Detailed(Message):
        """Worker -> browser: a batch of detailed entries."""

        bubble = False

        def __init__(self, generation: int, entries: tuple[ModelEntry, ...]) -> None:
            super().__init__()
            self.generation, self.entries = generation, entries

    class ScanFinished(Message):
        """Worker -> browser: the scan ended; `error` is set if it could not run at all."""

        bubble = False

        def __init__(self, generation: int, error: str | None = None) -> None:
            super().__init__()
            self.generation, self.error = generation, error

    class FitsWorkedOut(Message):
        """Fit worker -> browser: verdicts by entry key, for the GPUs of `generation`."""

        bubble = False

        def __init__(self, generation: int, fits: dict[str, Fit]) -> None:
            super().__init__()
            self.generation, self.fits = generation, fits

    scanning: reactive[bool] = reactive(False)

    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.settings = settings
        self._catalog = catalog
        self._generation = 0
        self.by_key: dict[str, ModelEntry] = {}  # read it; the scan replaces it
        self.listing: ScanLike | None = None  # the last fast listing, once there is one
        self._pending_select: tuple[Path | None, str | None] | None = None
        # quantizations kept from the last scan in place of their repo's listed entry, until
        # this scan details them; those it does not (deleted since) go when it ends
        self._carried: set[str] = set()
        self._gpu_fits = GpuFits()

    # -- what the subclass shows -------------------------------------------------------------

    def refresh_rows(self, changed: Sequence[str] | None = None) -> None:
        """Show the entries again; `changed`: only these changed."""
        raise NotImplementedError

    def post_catalog(self) -> None:
        """Say upwards that the entries or the scanning state changed."""
        raise NotImplementedError

    def select(self, key: str) -> bool:
        """Put the cursor on the entry with this key; False when there is none."""
        raise NotImplementedError

    # -- the entries -------------------------------------------------------------------------

    @property
    def entries(self) -> tuple[ModelEntry, ...]:
        return tuple(self.by_key.values())

    def rescan(self, *, select_path: Path | None = None, select_id: str | None = None) -> None:
        """Scan again; optionally select the model at `select_path` (or named `select_id`)."""
        if select_path is not None or select_id is not None:
            self._pending_select = (select_path, select_id)
        self._generation += 1
        self.scanning = True
        self.post_catalog()
        self._scan(self._generation)

    @property
    def fits(self) -> dict[str, Fit]:
        """The fit column's verdicts by entry key, as far as they are worked out."""
        return self._gpu_fits.fits

    @property
    def gpus_known(self) -> bool:
        """The GPU strip reports GPUs: the fit column applies."""
        return self._gpu_fits.gpus is not None

    def follow_gpus(self, snapshot: GpuSnapshot | None) -> bool:
        """The strip's newest snapshot; True when the fits are being worked out anew (a GPU
        came or went, or its free memory moved enough: see `fits.py`)."""
        if not self._gpu_fits.follow(snapshot):
            return False
        self._work_out_fits(self.by_key.values())
        return True

    def _work_out_fits(self, entries: Iterable[ModelEntry]) -> None:
        settings = self.settings
        job = self._gpu_fits.job(
            entries,
            os.environ.get("CUDA_VISIBLE_DEVICES"),
            settings.gpu_memory_utilization,
            settings.max_model_len,
        )
        if job is not None:
            self._fit(job)

    @work(thread=True, group="model-fits", exit_on_error=False)
    def _fit(self, job: FitJob) -> None:
        self.post_message(self.FitsWorkedOut(job.generation, work_out_fits(job)))

    @on(FitsWorkedOut)
    def _on_fits(self, message: FitsWorkedOut) -> None:
        if self._gpu_fits.worked_out(message.generation, message.fits):
            self.refresh_rows(changed=list(message.fits))

    # -- the scan worker ---------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="catalog-scan", exit_on_error=False)
    def _scan(self, generation: int) -> None:
        worker = get_current_worker()
        try:
            catalog = self._catalog or default_catalog()
            settings = self.settings
            result = catalog.list_models(
                settings.hf_hub_cache, settings.model_dirs, settings.modelscope_cache
            )
        except Exception as exc:  # the catalog never should raise; say so plainly if it does
            self.post_message(self.ScanFinished(generation, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.Listed(generation, result))
        batch: list[ModelEntry] = []
        last_post = time.monotonic()
        from vllm_console.core.catalog.index import default_index_path

        index_path = default_index_path(self.settings.home, os.environ)
        detailed = iter_detailed(catalog, result.entries, index_path)
        try:
            for entry in detailed:
                if worker.is_cancelled:
                    return
                batch.append(entry)
                if time.monotonic() - last_post >= BATCH_INTERVAL:
                    self.post_message(self.Detailed(generation, tuple(batch)))
                    batch, last_post = [], time.monotonic()
        finally:
            close = getattr(detailed, "close", None)
            if close is not None:
                close()  # a generator's pool stops with it: a rescan does not wait for it
        if batch:
            self.post_message(self.Detailed(generation, tuple(batch)))
        self.post_message(self.ScanFinished(generation))

    @on(Listed)
    def _on_listed(self, message: Listed) -> None:
        if message.generation != self._generation:
            return
        self.listing = message.result
        old = self.by_key
        self._carried = set()
        # Keep what an earlier scan learned until the new details arrive: no flicker to "…",
        # and a repo the earlier scan split into its quantizations stays split.
        split = _quantizations(old.values())
        by_key: dict[str, ModelEntry] = {}
        for entry in message.result.entries:
            if entry.detailed:
                by_key[entry.key] = entry
            elif entry.key in old:
                by_key[entry.key] = old[entry.key]
            elif parts := [p for p in split.get((entry.source, entry.id), ()) if _inside(p, entry)]:
                by_key.update((part.key, part) for part in parts)
                self._carried.update(part.key for part in parts)
            else:
                by_key[entry.key] = entry
        self.by_key = by_key
        if message.result.warnings:
            self.notify(
                "\n".join(visible(str(warning)) for warning in message.result.warnings),
                title="Some folders could not be read",
                severity="warning",
                timeout=8,
                markup=False,  # warnings name folders: a '[' in a name is not markup
            )
        self.refresh_rows()
        self.post_catalog()

    @on(Detailed)
    def _on_detailed(self, message: Detailed) -> None:
        if message.generation != self._generation:
            return
        dropped = False
        for entry in message.entries:
            self._carried.discard(entry.key)
            if entry.key not in self.by_key:
                dropped |= self._drop_split_repo(entry)
            self.by_key[entry.key] = entry
        self._work_out_fits(message.entries)
        self.refresh_rows(changed=None if dropped else [entry.key for entry in message.entries])
        self.post_catalog()

    def _drop_split_repo(self, entry: ModelEntry) -> bool:
        """A quantization the complete scan split off a cache repo takes the place of the
        repo's entry (see `scan.iter_detailed`): that entry goes. True if one went."""
        base, quant = split_quant_id(entry.id)
        if quant is None or entry.source is Source.FOLDER:
            return False
        gone = [
            key
            for key, old in self.by_key.items()
            if old.source is entry.source and old.id == base and _inside(entry, old)
        ]
        for key in gone:
            del self.by_key[key]
        return bool(gone)

    @on(ScanFinished)
    def _on_scan_finished(self, message: ScanFinished) -> None:
        if message.generation != self._generation:
            return
        self.scanning = False
        if not message.error:
            for key in self._carried:
                self.by_key.pop(key, None)
        self._carried = set()
        if message.error:
            self.notify(
                visible(message.error),
                title="Scan failed",
                severity="error",
                timeout=10,
                markup=False,
            )
        self._select_pending()
        self.refresh_rows()
        self.post_catalog()

    def _select_pending(self) -> None:
        if self._pending_select is None:
            return
        path, repo_id = self._pending_select
        self._pending_select = None
        for entry in self.by_key.values():
            if path is not None and (
                entry.path == path or path in entry.path.parents or entry.path in path.parents
            ):
                self.select(entry.key)
                return
        for entry in self.by_key.values():
            if repo_id is not None and entry.id == repo_id:
                self.select(entry.key)
                return


def _inside(part: ModelEntry, repo: ModelEntry) -> bool:
    """Whether `part`'s file lies in `repo`'s folder (a quantization of that repo)."""
    return repo.path in part.path.parents


def _quantizations(
    entries: Iterable[ModelEntry],
) -> dict[tuple[Source, str], list[ModelEntry]]:
    """Cache entries named `REPO:QUANT`, by (source, REPO)."""
    found: dict[tuple[Source, str], list[ModelEntry]] = {}
    for entry in entries:
        if entry.source is Source.FOLDER:
            continue
        base, quant = split_quant_id(entry.id)
        if quant is not None:
            found.setdefault((entry.source, base), []).append(entry)
    return found
