"""The catalog as the model browser sees it: a small protocol, so tests can pass a fake."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, cast

from vllm_console.core.catalog.entry import ModelEntry


class ScanLike(Protocol):
    """What the browser reads of `catalog.ScanResult`."""

    @property
    def entries(self) -> tuple[ModelEntry, ...]: ...
    @property
    def warnings(self) -> tuple[str, ...]: ...
    @property
    def looked_in(self) -> tuple[Path, ...]: ...


class Catalog(Protocol):
    """The part of `vllm_console.core.catalog.scan` the browser uses (tests pass a fake)."""

    def list_models(
        self, hf_cache: Path, model_dirs: Sequence[Path], ms_cache: Path | None = None
    ) -> ScanLike: ...
    def detail(self, entry: ModelEntry) -> ModelEntry: ...


def default_catalog() -> Catalog:
    """The real catalog, imported on first use so the first frame does not wait for it."""
    return cast(Catalog, importlib.import_module("vllm_console.core.catalog.scan"))


def iter_detailed(
    catalog: Catalog, entries: Sequence[ModelEntry], index_path: Path | None = None
) -> Iterator[ModelEntry]:
    """Detailed entries in the order they are ready, from the catalog's own `iter_detailed`
    where it has one (which reuses the index at `index_path`), else one `detail` at a time."""
    parallel = getattr(catalog, "iter_detailed", None)
    if parallel is None:
        return map(catalog.detail, entries)
    return cast(Iterator[ModelEntry], parallel(entries, index_path=index_path))
