"""The flags of `vllm serve`, and how a value of the fleet file becomes them and back.

The table (`vllm_flags.json`, written by scripts/vllm_flags.py from vLLM's own parser)
names every long flag with the kind of value it takes. A key of the fleet file is one of
them without the dashes, underscores accepted for dashes as vLLM accepts them; the value
becomes arguments exactly as vLLM's `vllm serve --config FILE` turns it into them
(`FlexibleArgumentParser.load_config_file` of vLLM 0.32): true is `--flag`, false is
`--no-flag` where vLLM has that form and nothing otherwise, a list is `--flag A B`, a
mapping is `--flag '{"json": ...}'`, anything else `--flag str(value)`. Values are checked
here first, so a wrong one is named with its line before anything starts; vLLM's own
check at launch still has the last word.

Unlike argparse, an abbreviated key (`tensor: 2` for tensor-parallel-size) is refused:
a fleet file is read again long after it was written, and a longer flag added by a newer
vLLM would silently change what an abbreviation means.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

TABLE_FILE = "vllm_flags.json"
INT_LIMIT = 2**63  # vLLM's integers end up in C
# Plausible ranges where a wrong number would only fail late, or do harm.
RANGES: Mapping[str, tuple[int, int]] = {
    "port": (1, 65535),
    "tensor-parallel-size": (1, 4096),
    "pipeline-parallel-size": (1, 4096),
    "data-parallel-size": (1, 4096),
    "max-model-len": (1, 10**8),
}
# vLLM's human_readable_int: 25.6k, 2G (binary suffixes take whole numbers only).
SIZE = re.compile(r"(\d+(?:\.\d+)?)([kmgt]?)|(\d+)([KMGT])")
SIZE_FACTORS = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
SIZE_FACTORS |= {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


@dataclass(frozen=True)
class Flag:
    """One long option of `vllm serve` (see scripts/vllm_flags.py for the kinds)."""

    name: str
    kind: str
    choices: tuple[str | int, ...] = ()
    fold: bool = False
    multiple: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def takes_value(self) -> bool:
        return self.kind not in ("bool", "negatable")


@dataclass(frozen=True)
class FlagTable:
    version: str
    flags: Mapping[str, Flag]  # by every long name, aliases included

    def names(self) -> list[str]:
        return sorted({flag.name for flag in self.flags.values()})

    def lookup(self, key: str) -> Flag | None:
        """The flag a fleet file's key (or a `--flag` without its dashes) names."""
        return self.flags.get(key.replace("_", "-"))


@cache
def table() -> FlagTable:
    """The table shipped with the package (read once)."""
    text = resources.files(__package__).joinpath(TABLE_FILE).read_text(encoding="utf-8")
    return parse_table(json.loads(text))


def parse_table(data: Mapping[str, Any]) -> FlagTable:
    flags: dict[str, Flag] = {}
    for entry in data["flags"]:
        flag = Flag(
            name=entry["name"],
            kind=entry["kind"],
            choices=tuple(entry.get("choices", ())),
            fold=bool(entry.get("fold", False)),
            multiple=bool(entry.get("multiple", False)),
            aliases=tuple(entry.get("aliases", ())),
        )
        for name in (flag.name, *flag.aliases):
            flags[name] = flag
    return FlagTable(str(data["vllm"]), flags)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind_word(flag: Flag) -> str:
    if flag.choices:
        shown = ", ".join(map(str, flag.choices[:12]))
        more = ", ..." if len(flag.choices) > 12 else ""
        return f"one of {shown}{more}"
    return {
        "int": "a whole number",
        "float": "a number",
        "str": "text",
        "size": "a whole number (or like 32k, 2G)",
        "size_or_auto": "a whole number (or like 32k), or auto",
        "json": "a mapping (or its JSON as text)",
    }.get(flag.kind, "true or false")


def check_item(flag: Flag, item: object) -> str:
    """One value of a flag as its argument text (vLLM's `str(value)`); ValueError saying
    what the flag takes instead (without the value, which may be a secret)."""
    if flag.choices:
        return _choice(flag, item)
    kind = flag.kind
    scalar = isinstance(item, str | int | float) and not isinstance(item, bool)
    if kind == "int" and isinstance(item, int) and scalar:
        low, high = RANGES.get(flag.name, (-INT_LIMIT, INT_LIMIT - 1))
        if not low <= item <= high:
            raise ValueError(f"out of range ({low} to {high})")
        return str(item)
    if kind == "float" and isinstance(item, int | float) and scalar:
        if not math.isfinite(item) or abs(item) >= INT_LIMIT:
            raise ValueError("expected a finite number")
        return str(item)
    if kind in ("size", "size_or_auto"):
        return _size(flag, item)
    if kind == "json" and isinstance(item, dict):
        return json.dumps(item)
    if kind in ("str", "json") and scalar:
        return str(item)
    raise ValueError(f"expected {_kind_word(flag)}")


def _choice(flag: Flag, item: object) -> str:
    if isinstance(item, bool | list | dict) or item is None:
        raise ValueError(f"expected {_kind_word(flag)}")
    text = str(item)
    folded = text.lower().replace("-", "_") if flag.fold else text
    if folded not in {str(choice) for choice in flag.choices}:
        raise ValueError(f"expected {_kind_word(flag)}")
    return text


def _size(flag: Flag, item: object) -> str:
    auto = flag.kind == "size_or_auto"
    if auto and (item == -1 or (isinstance(item, str) and item.strip().lower() == "auto")):
        return str(item)
    number = item if _is_int(item) else _size_value(item) if isinstance(item, str) else None
    if not isinstance(number, int) or not 0 <= number < INT_LIMIT:
        raise ValueError(f"expected {_kind_word(flag)}")
    low, high = RANGES.get(flag.name, (0, INT_LIMIT - 1))
    if not low <= number <= high:
        raise ValueError(f"out of range ({low} to {high})")
    return str(item)


def size_value(item: object) -> int | None:
    """The number a checked size stands for (None: auto, which vLLM works out itself)."""
    if isinstance(item, int) and not isinstance(item, bool):
        return None if item == -1 else item
    return _size_value(str(item))


def _size_value(text: str) -> int | None:
    """What vLLM's human_readable_int makes of a size (None: not a size it takes)."""
    match = SIZE.fullmatch(text.strip())
    if match is None or len(text) > 40:
        return None
    number, suffix, whole, binary = match.groups()
    if binary:
        return int(whole) * SIZE_FACTORS[binary]
    if not suffix:
        return int(number) if number.isdigit() else None
    return int(float(number) * SIZE_FACTORS[suffix])


def to_args(flag: Flag, given: object) -> list[str]:
    """The arguments vLLM's config loader makes of `key: given` (None: the key is left out,
    so vLLM's default holds); ValueError with what the flag takes instead."""
    option = "--" + flag.name
    if given is None:
        return []
    if not flag.takes_value:
        if not isinstance(given, bool):
            raise ValueError("expected true or false")
        if given:
            return [option]
        return ["--no-" + flag.name] if flag.kind == "negatable" else []
    if isinstance(given, list):
        if not flag.multiple:
            raise ValueError(f"takes one value, not a list (expected {_kind_word(flag)})")
        items = [check_item(flag, item) for item in given]
        return [option, *items] if items else []
    return [option, check_item(flag, given)]


def from_args(args: Sequence[str]) -> list[tuple[Flag, object]]:
    """The keys and values that `to_args` turns into `args` (the other way round, for
    saving a launch's extra arguments); ValueError for an argument that is no flag of the
    table, or a flag without its value."""
    found: list[tuple[Flag, object]] = []
    known = table()
    i = 0
    while i < len(args):
        name, eq, inline = args[i].partition("=")
        flag, negated = _flag_of(known, name)
        i += 1
        if not flag.takes_value:
            if eq:
                raise ValueError(f"{args[i - 1]!a}: this flag takes no value")
            found.append((flag, not negated))
            continue
        values = [inline] if eq else []
        while not eq and i < len(args) and not args[i].startswith("--"):
            values.append(args[i])
            i += 1
            if not flag.multiple:
                break
        if not values:
            raise ValueError(f"{name!a} needs a value")
        typed = [_typed(flag, text) for text in values]
        found.append((flag, typed if flag.multiple else typed[0]))
    return found


def _flag_of(known: FlagTable, arg: str) -> tuple[Flag, bool]:
    if not arg.startswith("--"):
        raise ValueError(f"{arg!a} is not a --flag")
    name = arg[2:].replace("_", "-")
    flag = known.lookup(name)
    if flag is not None:
        return flag, False
    negated = known.lookup(name.removeprefix("no-"))
    if name.startswith("no-") and negated is not None and negated.kind == "negatable":
        return negated, True
    raise ValueError(f"{arg!a} is not a flag of vllm serve {known.version}")


def _typed(flag: Flag, text: str) -> object:
    """An argument's text as the YAML value that gives it back (a number where the flag
    takes numbers, a mapping for JSON); ValueError if the flag does not take it."""
    try:
        value = _value_of(flag, text)
        check_item(flag, value)
    except ValueError as exc:
        raise ValueError(f"--{flag.name} {text!a}: {exc}") from None
    return value


def _value_of(flag: Flag, text: str) -> object:
    value: object = text
    if flag.kind == "int" or (flag.choices and _is_int(flag.choices[0])):
        value = _number(int, text)
    elif flag.kind == "float":
        value = _number(float, text)
    elif flag.kind in ("size", "size_or_auto") and re.fullmatch(r"-?\d+", text.strip()):
        value = _number(int, text)
    elif flag.kind == "json" and text.lstrip().startswith("{"):
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            parsed = None
        value = parsed if isinstance(parsed, dict) else text
    return value


def _number(kind: type[int] | type[float], text: str) -> int | float:
    if len(text) > 40:
        raise ValueError("a number of over 40 characters")
    try:
        return kind(text)
    except ValueError:
        raise ValueError("expected a number") from None


def describe(flag: Flag) -> str:
    """What a flag takes, for a message."""
    return _kind_word(flag)
