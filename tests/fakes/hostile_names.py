"""Model folders named to attack a terminal, and how the console must show them.

One name sets the window title (OSC 0, ended by BEL), one clears the screen (ED 2), two are
Rich/Textual markup. A '/' cannot be in a folder's name: the markup ones get theirs from the
catalog reading `ORG--NAME` as `ORG/NAME`.
"""

from __future__ import annotations

import json
from pathlib import Path

# folder name -> the model id the catalog gives it
IDS = {
    "\x1b]0;pwned\x07Org--Name": "\x1b]0;pwned\x07Org/Name",
    "Evil\x1b[2J--X": "Evil\x1b[2J/X",
    "[bold red]x[--]--Y": "[bold red]x[/]--Y",
    "[link=http:--x]y--Z": "[link=http:/x]y--Z",
}
# the ids as a person must see them: escapes visible, markup literal
SHOWN = (
    "\\x1b]0;pwned\\x07Org/Name",
    "Evil\\x1b[2J/X",
    "[bold red]x[/]--Y",
    "[link=http:/x]y--Z",
)
CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "bfloat16"}


def write_hostile_models(folder: Path) -> None:
    """One model folder (a config.json, no weights) per hostile name, in `folder`."""
    for name in IDS:
        (folder / name).mkdir(parents=True)
        (folder / name / "config.json").write_text(json.dumps(CONFIG))


def inert(text: str) -> bool:
    """Nothing a terminal would act on: no C0 control but newline, no DEL, no C1."""
    return not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0 for c in text)
