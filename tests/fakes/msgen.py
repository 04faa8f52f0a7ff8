"""ModelScope caches as the SDK writes them, in its three layouts (see `catalog.mscache`)."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

from tests.fakes.cachegen import QWEN25_7B, llama_tensors, safetensors_bytes

OLDEST, FLAT, FLAT_SET, NEWEST = "oldest", "flat", "flat-set", "newest"
LAYOUTS = (OLDEST, FLAT, FLAT_SET, NEWEST)


def model_files(tag: str, files: int = 4) -> dict[str, bytes]:
    """config.json, a header-only safetensors file and small text files: `files` in all."""
    import json

    out = {
        "config.json": json.dumps({**QWEN25_7B, "_name_or_path": tag}).encode(),
        "model.safetensors": safetensors_bytes(
            llama_tensors(hidden=3584, layers=4, vocab=152064), with_data=False
        ),
    }
    for k in range(files - len(out)):
        out[f"file_{k:02d}.txt"] = f"{tag} file {k}".encode()
    return out


def model_dir(root: Path, layout: str, repo_id: str, revision: str = "master") -> Path:
    """Where the SDK of that layout puts `repo_id` under the cache root `root` (FLAT_SET: the
    1.22-1.37 layout with MODELSCOPE_CACHE set, so without `hub/`)."""
    org, name = repo_id.split("/")
    safe = name.replace(".", "___")
    if layout == OLDEST:
        return root / "hub" / org / name
    if layout == FLAT:
        return root / "hub" / "models" / org / safe
    if layout == FLAT_SET:
        return root / "models" / org / safe
    return root / "models" / f"{org}--{name}" / "snapshots" / revision


def write_ms_model(
    root: Path,
    layout: str,
    repo_id: str,
    files: Mapping[str, bytes],
    *,
    revision: str = "master",
    incomplete: Mapping[str, bytes] | None = None,
    mdl_id: str | None = None,
) -> Path:
    """One model as the SDK of `layout` leaves it; `incomplete`: unfinished files (beside
    their target in the newest layout, in `._____temp` in the older ones)."""
    folder = model_dir(root, layout, repo_id, revision)
    folder.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(content)
    if layout != NEWEST:
        org, name = repo_id.split("/")
        stored = mdl_id or f"{org}/{name.replace('.', '___')}"
        (folder / ".mdl").write_bytes(pickle.dumps({"id": stored}))
        listed = [{"Path": rel, "Revision": revision} for rel in files]
        (folder / ".msc").write_bytes(pickle.dumps(listed))
        (folder / ".mv").write_text(f"Revision:{revision},CreatedAt:1700000000")
    for rel, content in (incomplete or {}).items():
        if layout == NEWEST:
            (folder / f"{rel}.incomplete").write_bytes(content)
        else:
            temp = folder.parent.parent / "._____temp" / folder.parent.name / folder.name
            temp.mkdir(parents=True, exist_ok=True)
            (temp / rel).write_bytes(content)
    return folder


def build_ms_bench_cache(root: Path, models: int, files: int = 20) -> Path:
    """`models` models of `files` files each, the layouts taking turns."""
    for i in range(models):
        layout = LAYOUTS[i % len(LAYOUTS)]
        write_ms_model(root, layout, f"msorg{i % 50}/ms-model-{i}.5B", model_files(str(i), files))
    return root
