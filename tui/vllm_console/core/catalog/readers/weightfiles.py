"""Which of a model folder's files vLLM loads as weights, and why the others are not.

vLLM's default loader (`DefaultModelLoader._prepare_weights`, load format "auto"):

1. A folder with `consolidated*.safetensors` is a Mistral-format checkpoint: only those files
   are loaded (filtered by `consolidated.safetensors.index.json` when there is one), so the
   Hugging Face shards beside them are a second copy of the same weights. Versions before
   the "mistral" load format read the shards instead; either way one copy is loaded.
2. Otherwise the first of `*.safetensors`, `*.bin`, `*.pt` that matches a top-level file
   (glob: not hidden files) wins, and the other kinds are ignored.
3. Safetensors files are filtered by `model.safetensors.index.json`'s `weight_map` when
   there is one (`filter_duplicate_safetensors_files`): a file it does not name is not
   loaded; a file it names that is missing makes vLLM fail.
4. `.bin`/`.pt` files lose the trainer's state (`filter_files_not_needed_for_inference`).

Every file not loaded stays on disk and in the entry's size; `WeightFiles.ignored` says why.
The index is anyone's JSON: a broken one is a problem, and the files are then all loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from vllm_console.core.catalog.readers.config import as_int, load_json
from vllm_console.core.catalog.readers.numbers import MAX_PARAMS
from vllm_console.core.files import NOT_REGULAR

INDEX_NAME = "model.safetensors.index.json"
MISTRAL_INDEX = "consolidated.safetensors.index.json"
TRAINING_STATE = ("training_args.bin", "optimizer.bin", "optimizer.pt", "scheduler.pt", "scaler.pt")
_KINDS = (".safetensors", ".bin", ".pt")
MAX_SHOWN_MISSING = 3


@dataclass(frozen=True)
class WeightFiles:
    """The weight files vLLM loads, the others with the reason (name, why), what is wrong,
    and the index's `metadata.total_parameters` when it states a plausible one."""

    loaded: tuple[str, ...] = ()
    ignored: tuple[tuple[str, str], ...] = ()
    problems: tuple[str, ...] = ()
    index_total: int | None = None


NO_WEIGHTS = WeightFiles()


def select(folder: str, top: Sequence[str]) -> WeightFiles:
    """The weights among `top` (the folder's top-level file names) as vLLM picks them."""
    visible = sorted([n for n in top if n.endswith(_KINDS) and not n.startswith(".")])
    consolidated = [
        n for n in visible if n.startswith("consolidated") and n.endswith(".safetensors")
    ]
    if consolidated:
        why = "a second copy: vLLM loads the consolidated (Mistral format) files"
        chosen, index_name, ext = consolidated, MISTRAL_INDEX, ".safetensors"
    else:
        ext, chosen = "", []
        for kind in _KINDS:  # the first kind present wins, as vLLM's glob patterns do
            chosen = [n for n in visible if n.endswith(kind)]
            if chosen:
                ext = kind
                break
        why = f"vLLM loads the {ext} files" if ext else ""
        index_name = INDEX_NAME
    ignored = [(n, why) for n in visible if n not in chosen]
    if ext != ".safetensors":
        state = [n for n in chosen if n.endswith(TRAINING_STATE)]
        ignored += [(n, "training state, not weights") for n in state]
        loaded = tuple(n for n in chosen if n not in state)
        return WeightFiles(loaded, tuple(sorted(ignored)))
    if index_name not in top:
        return WeightFiles(tuple(chosen), tuple(sorted(ignored)))
    named, total, problem = _read_index(os.path.join(folder, index_name), index_name)
    if named is None:
        problems = (problem,) if problem else ()
        return WeightFiles(tuple(chosen), tuple(sorted(ignored)), problems, total)
    ignored += [(n, f"not in {index_name}'s weight_map") for n in chosen if n not in named]
    loaded = tuple(n for n in chosen if n in named)
    problems = ()
    missing = sorted(named - set(chosen))
    if missing:
        shown = ", ".join(missing[:MAX_SHOWN_MISSING])
        more = (
            f" and {len(missing) - MAX_SHOWN_MISSING} more"
            if len(missing) > MAX_SHOWN_MISSING
            else ""
        )
        problems = (f"{index_name} names missing weight files: {shown}{more}",)
    return WeightFiles(loaded, tuple(sorted(ignored)), problems, total)


def _read_index(path: str, name: str) -> tuple[frozenset[str] | None, int | None, str | None]:
    """(the files the weight_map names, metadata.total_parameters, the problem)."""
    index, why = load_json(path)
    if index is None:
        if why == NOT_REGULAR:
            return None, None, f"{name} is {NOT_REGULAR}"
        return None, None, f"unreadable {name}: {why}"
    metadata = index.get("metadata")
    total = as_int(metadata.get("total_parameters")) if isinstance(metadata, dict) else None
    if total is not None and not 0 < total <= MAX_PARAMS:
        total = None  # not believed: the headers are summed instead (and checked)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict):
        return None, total, f"{name} has no weight_map"
    if not all(isinstance(v, str) for v in weight_map.values()):
        return None, total, f"{name}'s weight_map maps a tensor to something not a file name"
    return frozenset(weight_map.values()), total, None
