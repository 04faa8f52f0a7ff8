"""Launching a GGUF quantization: the file as the model, and the tokenizer to go with it.

What vLLM's documentation says about GGUF, which the launch dialog shows (`NOTES`): it loads
a single GGUF file only (a split set must be merged first, `split_problem`); it recommends the
original model's tokenizer over converting the one in the GGUF file (slow, and unreliable for
large vocabularies); its GGUF support is experimental and covers the architectures whose
tensor names it maps (Llama, Qwen, Gemma, Phi and others), and recent releases moved it into
the separate vllm-gguf-plugin package.

`tokenizer_for` finds that tokenizer: the repo's own when it ships one (tokenizer.json or
tokenizer_config.json beside the GGUF files), else a model of the catalog that is the
original: named by the GGUF header's `general.basename`, or by the repo's name without its
`-GGUF` ending. None: the launch dialog asks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from vllm_console.core.catalog.entry import Format, ModelEntry, Source
from vllm_console.core.catalog.ggufsets import split_quant_id
from vllm_console.core.catalog.quants import home_of
from vllm_console.core.catalog.readers.gguf import shard_stem

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
NOTES = (
    "GGUF: vLLM loads a single file only, and its GGUF support is experimental; "
    "it covers the architectures whose tensor names it maps (Llama, Qwen, Gemma, Phi and "
    "more), and recent releases need the vllm-gguf-plugin package for it.",
    "Tokenizer: vLLM recommends the original model's over converting the GGUF's own "
    "(slow, and unreliable for large vocabularies).",
)
MERGE_HINT = "llama-gguf-split --merge {first} merged.gguf"
_GGUF_END = re.compile(r"(?i)[-_.]?gguf$")


def is_gguf_model(model: str) -> bool:
    """Whether a launch's model is a GGUF file (what a GGUF entry's path is)."""
    return model.lower().endswith(".gguf")


def split_problem(model: str) -> str | None:
    """Why a GGUF model cannot be launched as it is: a shard of a split set. None: it can."""
    shard = shard_stem(os.path.basename(model))
    if shard is None or shard[2] < 2:
        return None
    first = MERGE_HINT.format(first=os.path.basename(model))
    return (
        f"a GGUF split in {shard[2]} files: vLLM loads single-file GGUF only. "
        f"Merge them first (llama.cpp: {first}) and launch the merged file"
    )


def _has_tokenizer(folder: Path) -> bool:
    return any(os.path.isfile(folder / name) for name in TOKENIZER_FILES)


def original_names(entry: ModelEntry) -> list[str]:
    """Names the original model may have in the catalog: the header's `general.basename`,
    and the repo's name without its `-GGUF` ending (with and without its org)."""
    names: list[str] = []
    basename = entry.config.get("general.basename")
    if isinstance(basename, str) and basename.strip():
        names.append(basename.strip())
    repo = split_quant_id(entry.id)[0]
    stripped = _GGUF_END.sub("", repo)
    if stripped and stripped != repo:
        names += [stripped, stripped.rpartition("/")[2]]
    return names


def tokenizer_for(entry: ModelEntry, catalog: Iterable[ModelEntry]) -> str | None:
    """The `--tokenizer` for a GGUF entry (a folder, see above); None when none is found."""
    home = home_of(entry)
    if home is not None and _has_tokenizer(home):
        return str(home)
    wanted = [name.lower() for name in original_names(entry)]
    if not wanted:
        return None
    best: tuple[int, str] | None = None
    for other in catalog:
        own = other.id.lower()
        rank = next((i for i, w in enumerate(wanted) if own == w or own.endswith("/" + w)), None)
        if rank is None or (best is not None and rank >= best[0]) or other.format is Format.GGUF:
            continue
        if other.path.is_dir() and _has_tokenizer(other.path):
            best = (rank, str(other.path))
    return best[1] if best else None


def names_tokenizer(args: Sequence[str]) -> bool:
    """Whether the user's own arguments already pass `--tokenizer` (theirs wins)."""
    return any(a == "--tokenizer" or a.startswith("--tokenizer=") for a in args)


def file_tokenizer(
    name: str,
    path: Path,
    catalog: Sequence[ModelEntry],
    detail: Callable[[ModelEntry], ModelEntry],
) -> str | None:
    """`tokenizer_for` the GGUF file a name resolved to (a launch without the screen): its
    catalog entry where the listing has one, else the file as a model folder's (`name` its
    id, its folder its repo); `detail` reads its header for `general.basename`."""
    entry = next((e for e in catalog if e.path == path), None)
    if entry is None:
        entry = ModelEntry.listed(name, path, Source.FOLDER, path.parent.parent)
    return tokenizer_for(detail(entry), catalog)


def gguf_tokenizer(entry: ModelEntry | None, catalog: Iterable[ModelEntry]) -> str | None:
    """`tokenizer_for` when `entry` is a GGUF file; None for any other model (or none)."""
    if entry is None or not is_gguf_model(str(entry.path)):
        return None
    return tokenizer_for(entry, catalog)
