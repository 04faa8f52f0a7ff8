"""Model name -> where it lies, in the original launch script's order, with the reason.

Order: an existing path; the Hugging Face cache (the snapshot `refs/main` names, else the
newest); the ModelScope cache (its layouts in the SDK's own order, see `mscache.candidates`);
the common model folders (`DIR/NAME`, `DIR/ORG--NAME`, `DIR/ORG/NAME`,
`DIR/BASENAME`); and last the hub id itself, which vLLM would have to download.
Every place looked at is recorded, so the answer can say why it won and what it passed over.
A name with a quantization (`ORG/NAME:Q4_K_M`, as vLLM and llama.cpp write one file of a GGUF
repo) resolves the repo, then that quantization's file in it (`ggufsets`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from vllm_console.core.catalog import hfcache, mscache
from vllm_console.core.catalog.ggufsets import find_set, quant_sets, split_quant_id
from vllm_console.core.catalog.quants import repo_names

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class Rule(StrEnum):
    PATH = "path"
    HF_CACHE = "hf-cache"
    MODELSCOPE_CACHE = "modelscope-cache"
    MODEL_DIR = "model-dir"
    HUB = "hub"
    NOT_FOUND = "not-found"


@dataclass(frozen=True)
class Attempt:
    rule: Rule
    place: str
    outcome: str

    def to_json(self) -> dict[str, str]:
        return {"rule": str(self.rule), "place": self.place, "outcome": self.outcome}


@dataclass(frozen=True)
class Resolution:
    name: str
    rule: Rule
    reason: str
    path: Path | None = None
    hub_id: str | None = None
    tried: tuple[Attempt, ...] = ()

    @property
    def is_local(self) -> bool:
        return self.path is not None

    @property
    def needs_download(self) -> bool:
        return self.rule is Rule.HUB

    @property
    def target(self) -> str:
        """What to hand to `vllm serve`: the local path, else the hub id."""
        if self.path is not None:
            return str(self.path)
        return self.hub_id or self.name

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "hub_id": self.hub_id,
            "target": self.target,
            "rule": str(self.rule),
            "reason": self.reason,
            "needs_download": self.needs_download,
            "tried": [attempt.to_json() for attempt in self.tried],
        }


def is_hub_id(name: str) -> bool:
    return bool(_HUB_ID.match(name)) and ".." not in name


def cache_repo_dir(hf_cache: Path, repo_id: str) -> Path:
    return hf_cache / ("models--" + repo_id.replace("/", "--"))


def cache_snapshot(repo_dir: Path) -> tuple[Path | None, str]:
    """The snapshot `refs/main` names, else the newest one; with a word on which it was.

    The catalog lists a repo by the same rule (`hfcache.choose_snapshot`), so a name resolves
    to the snapshot its entry shows.
    """
    choice = hfcache.choose_snapshot(str(repo_dir))
    if choice.chosen is None:
        return None, choice.why()
    return repo_dir / "snapshots" / choice.chosen, choice.why()


def folder_candidates(model_dir: Path, name: str) -> list[Path]:
    """`DIR/NAME` (which is `DIR/ORG/NAME` for a hub id), `DIR/ORG--NAME`, `DIR/BASENAME`."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    found: list[Path] = []
    for relative in (name, name.replace("/", "--"), base):
        candidate = model_dir / relative
        if relative and candidate not in found:
            found.append(candidate)
    return found


def resolve(
    name: str,
    *,
    hf_cache: Path,
    model_dirs: Sequence[Path],
    cwd: Path | None = None,
    ms_cache: Path | None = None,
) -> Resolution:
    """Find `name` in the seed order; never raises for a missing or odd name."""
    tried: list[Attempt] = []
    cwd = cwd or Path.cwd()
    as_path = _as_path(name, cwd)
    base, quant = split_quant_id(name)
    if quant is not None and not as_path.exists():
        found = resolve(base, hf_cache=hf_cache, model_dirs=model_dirs, cwd=cwd, ms_cache=ms_cache)
        return _quant_of(found, name, quant)
    if as_path.exists():
        tried.append(Attempt(Rule.PATH, str(as_path), "exists"))
        return Resolution(name, Rule.PATH, "an existing path", path=as_path, tried=tuple(tried))
    tried.append(Attempt(Rule.PATH, str(as_path), "no such path"))

    if is_hub_id(name) or "/" not in name:
        repo_dir = cache_repo_dir(hf_cache, name)
        if repo_dir.is_dir():
            snapshot, why = cache_snapshot(repo_dir)
            tried.append(Attempt(Rule.HF_CACHE, str(repo_dir), why))
            if snapshot is not None:
                reason = f"found in the Hugging Face cache ({why})"
                return Resolution(name, Rule.HF_CACHE, reason, path=snapshot, tried=tuple(tried))
        else:
            tried.append(Attempt(Rule.HF_CACHE, str(repo_dir), "not in the cache"))

    if ms_cache is not None and is_hub_id(name):
        for place, layout in mscache.candidates(ms_cache, name):
            folder, why = mscache.model_folder(place, layout)
            tried.append(Attempt(Rule.MODELSCOPE_CACHE, str(place), f"{layout}: {why}"))
            if folder is not None:
                reason = f"found in the ModelScope cache ({layout}, {why})"
                rule = Rule.MODELSCOPE_CACHE
                return Resolution(name, rule, reason, path=folder, tried=tuple(tried))

    for model_dir in model_dirs:
        for candidate in folder_candidates(model_dir, name):
            if candidate.exists():
                tried.append(Attempt(Rule.MODEL_DIR, str(candidate), "exists"))
                reason = f"found in the model folder {model_dir}"
                return Resolution(name, Rule.MODEL_DIR, reason, path=candidate, tried=tuple(tried))
            tried.append(Attempt(Rule.MODEL_DIR, str(candidate), "no such path"))

    if is_hub_id(name):
        reason = "not on disk; vLLM would download it from the hub"
        return Resolution(name, Rule.HUB, reason, hub_id=name, tried=tuple(tried))
    reason = "not on disk, and not an Org/Name hub id either"
    return Resolution(name, Rule.NOT_FOUND, reason, tried=tuple(tried))


def _as_path(name: str, cwd: Path) -> Path:
    try:
        as_path = Path(name).expanduser()
    except RuntimeError:  # `~user` of no such user: taken as written
        as_path = Path(name)
    return as_path if as_path.is_absolute() else cwd / as_path


def _quant_of(found: Resolution, name: str, quant: str) -> Resolution:
    """The file of quantization `quant` in the repo or folder `found` names."""
    if found.rule is Rule.HUB:
        reason = "not on disk; vLLM would download this GGUF quantization from the hub"
        return Resolution(name, Rule.HUB, reason, hub_id=name, tried=found.tried)
    if found.path is None:
        return replace(found, name=name)
    sets = quant_sets(repo_names(str(found.path))) if found.path.is_dir() else []
    chosen = find_set(sets, quant)
    if chosen is None:
        have = ", ".join(s.quant or s.stem for s in sets) or "no GGUF files"
        reason = f"{found.path} holds no GGUF quantization {quant} ({have})"
        return Resolution(name, Rule.NOT_FOUND, reason, tried=found.tried)
    path = found.path.joinpath(*chosen.first.split("/"))
    reason = f"{found.reason}; quantization {quant}: {chosen.first}"
    return Resolution(name, found.rule, reason, path=path, tried=found.tried)
