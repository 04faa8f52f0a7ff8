#!/usr/bin/env python3
"""Write the table of `vllm serve` flags that the fleet file checks its keys against.

Run it with the Python of an environment where vLLM is installed (vLLM's own parser is
built, nothing is served):

    VENV/bin/python scripts/vllm_flags.py [OUT.json]

Without OUT it prints the table. The table the console ships,
`tui/vllm_console/core/fleet/vllm_flags.json`, is this script's output for the vLLM the
tests run (tests/e2e/test_vllm_flags_real.py regenerates it and compares).

Each flag is a key of `vllm serve --config FILE` (the long name without its dashes) with
what its value must be: `kind` is "bool" (store_true: only `--flag`), "negatable"
(BooleanOptionalAction: `--flag` or `--no-flag`), "int", "float", "str", "size" (an int
or "1k", "2G"...), "size_or_auto" (also -1 or "auto") or "json" (a mapping, given to vLLM
as JSON); `choices` lists the values it takes, `fold` says vLLM lowercases the value and
turns '-' into '_' before checking them; `multiple` says it takes several values (a YAML
list); `aliases` are its other long names.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Long options that are not settings of a server: a nested config file, the help.
SKIPPED = {"config", "help"}
# vLLM's type helpers, by the name of the function that finally parses the text.
KIND_OF = {
    "int": "int",
    "float": "float",
    "str": "str",
    "loads": "json",
    "parse_dataclass": "json",
    "union_dict_and_str": "json",
    "human_readable_int": "size",
    "human_readable_int_or_auto": "size_or_auto",
}
WRAPPERS = {"_optional_type", "_parse_type"}  # vLLM's wrappers around another type


def base_type(convert: Callable[[str], Any] | None) -> Callable[[str], Any] | None:
    """The function under vLLM's `optional_type(parse_type(...))` wrappers."""
    while convert is not None and getattr(convert, "__name__", "") in WRAPPERS:
        convert = inspect.getclosurevars(convert).nonlocals.get("return_type")
    return convert


def folds(convert: Callable[[str], Any]) -> bool:
    """Whether a type lowercases and turns '-' into '_' (vLLM's backend choices do)."""
    try:
        return bool(convert("A-B") == "a_b")
    except Exception:
        return False


def describe(action: argparse.Action) -> dict[str, Any] | None:
    longs = [s[2:] for s in action.option_strings if s.startswith("--")]
    if not longs or longs[0] in SKIPPED:
        return None
    if isinstance(action, argparse.BooleanOptionalAction):
        longs = [name for name in longs if not name.startswith("no-")]
        kind = "negatable"
    elif action.nargs == 0:
        kind = "bool"
    else:
        convert = base_type(action.type)
        kind = KIND_OF.get(getattr(convert, "__name__", "str"), "str")
    entry: dict[str, Any] = {"name": longs[0], "kind": kind}
    if action.choices is not None:
        entry["choices"] = sorted(
            (c for c in action.choices if c is not None), key=lambda c: (str(type(c)), c)
        )
        if action.type is not None and folds(action.type):
            entry["fold"] = True
    if action.nargs in ("+", "*"):
        entry["multiple"] = True
    if len(longs) > 1:
        entry["aliases"] = longs[1:]
    return entry


def table() -> dict[str, Any]:
    import vllm
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))
    flags = [entry for action in parser._actions if (entry := describe(action))]
    flags.sort(key=lambda entry: entry["name"])
    return {"vllm": vllm.__version__, "flags": flags}


def main() -> int:
    text = json.dumps(table(), indent=1) + "\n"
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
