"""The ModelScope cache's layouts: which of its folders are models, and under which id.

The root is `MODELSCOPE_CACHE`, else `~/.cache/modelscope` (the SDK's own default; its older
releases put everything under `hub/` there). The SDK has written three layouts (read from its
code), and one cache can hold all of them, so each is looked at:

- before 1.22: `hub/ORG/NAME` (with `MODELSCOPE_CACHE` set: `ORG/NAME` under the root);
- 1.22 to 1.37: `hub/models/ORG/NAME` (with `MODELSCOPE_CACHE` set: `models/ORG/NAME`), every
  `.` in NAME written as `___` (`Qwen2___5-7B` is `Qwen2.5-7B`);
- 1.38 and later (the `modelscope-hub` package): `models/ORG--NAME/snapshots/REVISION/`,
  REVISION usually `master`.

The two older layouts are flat folders holding the model's files and the SDK's marker files
(`MARKERS`: `.mdl`, `.msc`, `.mv`); a folder without `.mdl` or `.msc` is not one the SDK wrote,
and is not listed. Their downloads in progress lie in `._____temp/ORG/NAME` beside the org
folders. The id is read from the path (dots restored); `msmodel` reads the markers.

`list_cache` is part of the first list, so it reads as little as it can: a listing of each
org folder, and per model one stat (its `.mdl`; `.msc` only when that is missing), or for the
newest layout one stat of `snapshots/master` (the snapshots are listed only when it is not
there). `candidates` gives the places the SDK itself would look for an id, in its order, for
`resolve`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from vllm_console.compat import child_path
from vllm_console.core.catalog.entry import ModelEntry, Revision, Source

HUB = "hub"
MODELS = "models"
SNAPSHOTS = "snapshots"
TEMP = "._____temp"
DOT = "___"
MARKERS = (".mdl", ".msc", ".mv")
FLAT, OLDEST, NEWEST = "1.22-1.37 layout", "pre-1.22 layout", "1.38+ layout"
DEFAULT_REVISIONS = ("master", "main")  # the SDK's choice when no revision is asked for
# Folders of the SDK's own (and of other repo types) that sit beside the org folders
NOT_ORGS = frozenset({HUB, MODELS, "datasets", "studios", "mcps", "skills"})


def model_id(org: str, name: str) -> str:
    """The hub id of a flat folder `ORG/NAME`: `___` in NAME is a `.` (`Qwen2___5` -> `Qwen2.5`)."""
    return f"{org}/{name.replace(DOT, '.')}"


def repo_id(folder: str) -> str | None:
    """The hub id of a `models/ORG--NAME` folder of the newest layout; None if it is not one."""
    org, sep, name = folder.partition("--")
    if not sep or not org or not name or org.startswith(".") or "/" in folder:
        return None
    return f"{org}/{name}"


def safe_name(name: str) -> str:
    """NAME as the 1.22-1.37 SDK wrote it on disk: every `.` as `___`."""
    return name.replace(".", DOT)


def list_cache(root: Path) -> tuple[list[ModelEntry], list[str]]:
    """Every model of every layout in the ModelScope cache at `root`, with warnings about
    folders that could not be read. A missing cache (or layout) is no models."""
    entries: list[ModelEntry] = []
    warnings: list[str] = []
    hub = child_path(root, HUB)
    for where, skip in ((root, NOT_ORGS), (hub, NOT_ORGS)):
        _list_flat(where, skip, root, entries, warnings)
    _list_flat(child_path(hub, MODELS), frozenset(), root, entries, warnings)
    _list_models_dir(child_path(root, MODELS), root, entries, warnings)
    return entries, warnings


def _scan(folder: str, warnings: list[str]) -> list[tuple[str, str]]:
    """(name, path) of the folders in `folder`, hidden ones left out; [] if it is missing."""
    try:
        with os.scandir(folder) as it:
            return [(e.name, e.path) for e in it if e.name[:1] != "." and e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        warnings.append(f"unreadable folder: {folder}: {exc.strerror or exc}")
        return []


def _list_flat(
    where: Path, skip: frozenset[str], root: Path, entries: list[ModelEntry], warnings: list[str]
) -> None:
    """The flat models `where/ORG/NAME` (the two older layouts)."""
    for org, org_path in _scan(str(where), warnings):
        if org not in skip:
            _list_org(child_path(where, org), org, org_path, root, entries, warnings)


def _list_org(
    org_dir: Path, org: str, path: str, root: Path, entries: list[ModelEntry], warnings: list[str]
) -> None:
    for name, model_path in _scan(path, warnings):
        if is_sdk_folder(model_path):
            folder = child_path(org_dir, name)
            entries.append(ModelEntry.listed(model_id(org, name), folder, Source.MODELSCOPE, root))


def is_sdk_folder(path: str) -> bool:
    """Whether a flat folder holds the SDK's `.mdl` or `.msc` marker."""
    return _exists(path + "/.mdl") or _exists(path + "/.msc")


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except (OSError, ValueError):
        return False
    return True


def _list_models_dir(
    models: Path, root: Path, entries: list[ModelEntry], warnings: list[str]
) -> None:
    """`models/`: repos of the newest layout (`ORG--NAME`) and org folders of the flat one."""
    for name, path in _scan(str(models), warnings):
        found = repo_id(name)
        repo = child_path(models, name)
        if found is not None and _is_dir(path + "/" + SNAPSHOTS):
            entries.append(_list_repo(found, repo, path, root))
        else:
            _list_org(repo, name, path, root, entries, warnings)


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _list_repo(found: str, repo: Path, path: str, root: Path) -> ModelEntry:
    """A repo of the newest layout, standing for `master` if it is there (one stat)."""
    snapshots = child_path(repo, SNAPSHOTS)
    if _is_dir(f"{path}/{SNAPSHOTS}/master"):
        chosen = child_path(snapshots, "master")
        return ModelEntry.listed(
            found, chosen, Source.MODELSCOPE, root, (Revision.listed("master", chosen),)
        )
    names = snapshot_names(path + "/" + SNAPSHOTS)
    pick = choose_snapshot(path + "/" + SNAPSHOTS, names)
    if pick is None:
        return ModelEntry.listed(found, repo, Source.MODELSCOPE, root)
    order = [pick, *sorted(n for n in names if n != pick)]
    revisions = tuple(Revision.listed(n, child_path(snapshots, n)) for n in order)
    return ModelEntry.listed(found, revisions[0].path, Source.MODELSCOPE, root, revisions)


def snapshot_names(snapshots: str) -> list[str]:
    """The revision folders of a repo of the newest layout."""
    try:
        with os.scandir(snapshots) as it:
            return [e.name for e in it if e.name[:1] != "." and e.is_dir()]
    except OSError:
        return []


def choose_snapshot(snapshots: str, names: list[str]) -> str | None:
    """The revision a repo stands for, by the SDK's rule when none is asked for: `master`,
    else `main`, else (where the SDK would ask which) the most recently modified."""
    for default in DEFAULT_REVISIONS:
        if default in names:
            return default
    newest: tuple[int, str] | None = None
    for name in names:
        try:
            mtime = os.stat(f"{snapshots}/{name}").st_mtime_ns
        except OSError:
            continue
        if newest is None or (mtime, name) > newest:
            newest = (mtime, name)
    return newest[1] if newest else None


def is_repo_snapshot(path: str) -> bool:
    """Whether a ModelScope entry's path is a snapshot of the newest layout."""
    parts = path.rsplit("/", 3)
    return len(parts) == 4 and parts[2] == SNAPSHOTS and repo_id(parts[1]) is not None


def temp_folder(path: str) -> str:
    """Where the older SDKs keep a flat model's (`ROOT/ORG/NAME`) download in progress."""
    head, org, name = path.rsplit("/", 2)
    return f"{head}/{TEMP}/{org}/{name}"


def candidates(root: Path, hub_id: str) -> list[tuple[Path, str]]:
    """(folder, layout) where the SDK looks for `hub_id`, in its order: the 1.22-1.37 layouts
    (which it reuses before downloading anew), the newest one's repo, then the oldest."""
    org, _, name = hub_id.partition("/")
    safe = safe_name(name)
    places = [
        (root / MODELS / org / safe, FLAT),
        (root / HUB / MODELS / org / safe, FLAT),
        (root / MODELS / f"{org}--{name}", NEWEST),
        (root / HUB / org / name, OLDEST),
        (root / HUB / org / safe, OLDEST),
    ]
    if org not in NOT_ORGS:
        places += [(root / org / name, OLDEST), (root / org / safe, OLDEST)]
    unique: dict[Path, str] = {}
    for place, layout in places:
        unique.setdefault(place, layout)
    return list(unique.items())


def model_folder(place: Path, layout: str) -> tuple[Path | None, str]:
    """The model folder a candidate of `candidates` leads to, with a word on why or why not:
    a flat folder if the SDK's markers are in it, a repo's chosen snapshot."""
    path = str(place)
    if layout == NEWEST:
        names = snapshot_names(path + "/" + SNAPSHOTS)
        chosen = choose_snapshot(path + "/" + SNAPSHOTS, names)
        if chosen is None:
            return None, "no snapshots" if _is_dir(path) else "not in the cache"
        return place / SNAPSHOTS / chosen, f"snapshot {chosen}"
    if not _is_dir(path):
        return None, "not in the cache"
    if not is_sdk_folder(path):
        return None, "no .mdl or .msc marker: not written by the SDK"
    return place, "a flat model folder"
