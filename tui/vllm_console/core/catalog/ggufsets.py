"""GGUF quantizations by file name: which files make one quantization, and what it is called.

A repo of GGUF files (`Qwen2.5-7B-Instruct-GGUF`) holds one file per quantization
(`qwen2.5-7b-instruct-q4_k_m.gguf`), or a split set of shards for a big one
(`...-q8_0-00001-of-00003.gguf`, often in a folder of its own: `Q8_0/...`). Each is a model of
its own to the catalog: `quant_sets` groups the names, `quant_ids` names each set
(`ORG/NAME:Q4_K_M`, the `repo:quant` form vLLM and llama.cpp accept for a hub repo), and
`split_quant_id` reads such a name back. Names only: nothing here opens a file.

File names come from disk and ids from users: nothing is trusted, nothing raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from vllm_console.core.catalog.readers.gguf import gguf_stem, quant_from_name, shard_stem

# The `:QUANT` of `ORG/NAME:QUANT`: a quant type or a file stem, no path in it.
_QUANT_SUFFIX = re.compile(r"^(?P<base>[^:]+):(?P<quant>[A-Za-z0-9][\w.-]{0,127})$")
MAX_SETS = 256  # quantizations one repo lists (a real one has up to ~30)


class QuantSet(NamedTuple):
    """One quantization: its files (relative to the repo, shards in order), the stem they
    share, the quant type their name says (None: it says none), and the shard count (0: a
    single file)."""

    stem: str
    files: tuple[str, ...]
    quant: str | None
    parts: int

    @property
    def first(self) -> str:
        return self.files[0]

    @property
    def is_split(self) -> bool:
        return self.parts > 1 or len(self.files) > 1


def is_gguf_name(name: str) -> bool:
    return name.lower().endswith(".gguf")


def quant_sets(names: Iterable[str]) -> list[QuantSet]:
    """The GGUF quantizations among `names` (relative paths, at most one folder deep), sorted
    by stem; at most `MAX_SETS`. Shards group by folder and stem, whatever their count says."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name in names:
        folder, _, base = name.rpartition("/")
        if not is_gguf_name(base) or "/" in folder or base.startswith("."):
            continue
        groups.setdefault((folder, gguf_stem(base)), []).append(name)
    sets: list[QuantSet] = []
    for (_, stem), files in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if len(sets) >= MAX_SETS:
            break
        files.sort(key=_shard_order)
        shard = shard_stem(files[0].rpartition("/")[2])
        quant = quant_from_name(files[0].rpartition("/")[2]) or quant_from_name(files[0])
        sets.append(QuantSet(stem, tuple(files), quant, shard[2] if shard else 0))
    return sets


def _shard_order(name: str) -> tuple[int, str]:
    shard = shard_stem(name.rpartition("/")[2])
    return (shard[1] if shard else 0), name


def quant_ids(base_id: str, sets: Sequence[QuantSet]) -> list[str]:
    """The entry id of each set: `base_id` alone for one set; else `base_id:QUANT` where the
    quant type names one set only, `base_id:STEM` where it does not (`STEM-2`, `STEM-3`...
    for the same stem in several folders)."""
    if len(sets) == 1:
        return [base_id]
    counts: dict[str | None, int] = {}
    for s in sets:
        counts[s.quant] = counts.get(s.quant, 0) + 1
    labels = [s.quant if s.quant and counts[s.quant] == 1 else s.stem for s in sets]
    used: set[str] = set()
    ids: list[str] = []
    for label in labels:
        candidate, n = label, 1
        while candidate in used:
            n += 1
            candidate = f"{label}-{n}"
        used.add(candidate)
        ids.append(f"{base_id}:{candidate}")
    return ids


def split_quant_id(name: str) -> tuple[str, str | None]:
    """`ORG/NAME:Q4_K_M` -> (`ORG/NAME`, `Q4_K_M`); a name without such a suffix -> (name,
    None). A path with a colon in a folder's name is not split."""
    match = _QUANT_SUFFIX.match(name)
    if match is None or "/" in match["quant"]:
        return name, None
    return match["base"], match["quant"]


def find_set(sets: Sequence[QuantSet], quant: str) -> QuantSet | None:
    """The set `quant` names: by quant type (any case) if one set has it, else by stem."""
    wanted = quant.upper()
    typed = [s for s in sets if s.quant == wanted]
    if len(typed) == 1:
        return typed[0]
    return next((s for s in sets if s.stem == quant), None)
