"""The model list's empty state: where the catalog looked, how to add a folder, how to download."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from textual.content import Content

from vllm_console.core.text import visible


def empty_state_text(
    looked_in: Sequence[Path], caches: Mapping[Path, str], scanning: bool
) -> Content:
    """Where the scan looked (`caches`: what each cache among those places is), how to add a
    folder, and that `d` downloads a model."""
    heading = "Still looking for models…" if scanning else "No models found."
    parts: list[str | tuple[str, str]] = [(heading, "bold"), "\n\nLooked in:\n"]
    for path in looked_in:
        parts.append(f"  {visible(str(path))}")
        parts.append((f"   ({caches[path]})\n", "italic") if path in caches else "\n")
    parts += [
        ("\nAdd a folder of models\n", "bold"),
        "  set VLLM_CONSOLE_MODEL_DIRS=/path/to/models (several: separate with ':')\n",
        "  or start with  vllm-console --model-dirs /path/to/models\n",
        ("\nDownload one\n", "bold"),
        "  press ",
        ("d", "bold"),
        " to download a model from the hub\n",
    ]
    return Content.assemble(*parts)
