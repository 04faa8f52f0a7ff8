"""The fleet file's own values, and its problems: each with its line, in words for people.

Every value quoted in a message is shortened and has its control characters made visible
(`show`); API keys are never quoted.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vllm_console.config import Settings
from vllm_console.core.fleet.model import slug
from vllm_console.core.text import visible

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
GPU_LIMIT = (64, 1023)  # GPUs of one server, highest NVML index (as LaunchSpec checks)
SHOWN = 60  # characters of a bad value quoted in a message


def show(given: object) -> str:
    """A value of the user's, short and with its control characters visible (text in
    quotes, as YAML would have it; numbers, lists and mappings as Python writes them)."""
    text = visible(given if isinstance(given, str) else repr(given))
    text = text[:SHOWN] + "..." if len(text) > SHOWN else text
    return f"'{text}'" if isinstance(given, str) else text


class FleetFileError(Exception):
    """A fleet file that cannot be used: every problem, each "FILE line N: what" (from
    `dump_fleet`: "NAME: what")."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class Problems:
    """What is wrong, each with its line, in the words a message gives them."""

    def __init__(self, where: str) -> None:
        self.where = visible(where)
        self.found: list[tuple[int, str]] = []

    def add(self, line: int, what: str) -> None:
        self.found.append((line, what))

    def lines(self) -> tuple[str, ...]:
        ordered = sorted(self.found, key=lambda item: item[0])
        return tuple(visible(f"{self.where} line {line}: {what}") for line, what in ordered)


def suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def is_name(name: str) -> bool:
    return slug(name) == name and name.strip(".") != ""


def text_of(item: tuple[int, Any], problems: Problems, key: str) -> str | None:
    at, given = item
    if isinstance(given, str) and given and given.isprintable():
        return given
    problems.add(at, f"{key}: expected text on one line, not {show(given)}")
    return None


def secret_of(item: tuple[int, Any], problems: Problems) -> str | None:
    at, given = item
    if given is None:
        return None
    if isinstance(given, str) and given and given.isprintable() and given == given.strip():
        return given
    problems.add(at, "api-key: expected one key, as text on one line")  # never quoted
    return None


def model_target(model: str, path: Path, settings: Settings) -> tuple[str, bool]:
    """The model as the launch gets it, and whether it is a folder.

    A path (starting with `/`, `./`, `../` or `~`) is a folder, a relative one from the
    fleet file's folder: a fleet file and its models move together, and the file means
    the same whichever folder `up` runs in. Anything else is kept as written.
    """
    if model == "~" or model.startswith("~/"):
        return os.path.normpath(settings.home / model[2:]), True
    if model.startswith("/"):
        return os.path.normpath(model), True
    if model in (".", "..") or model.startswith(("./", "../")):
        folder = path.parent if path.is_absolute() else settings.cwd / path.parent
        return os.path.normpath(folder / model), True
    return model, False


def gpus_of(item: tuple[int, Any], problems: Problems) -> tuple[int, ...] | None:
    at, given = item
    if isinstance(given, str) and re.fullmatch(r"\s*\d{1,4}(\s*,\s*\d{1,4})*\s*", given):
        given = [int(part) for part in given.split(",")]
    elif isinstance(given, int) and not isinstance(given, bool):
        given = [given]
    count, highest = GPU_LIMIT
    if (
        not isinstance(given, list)
        or not 0 < len(given) <= count
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in given)
    ):
        problems.add(at, f'gpus: expected GPU indices like [0, 1] or "0,1", not {show(given)}')
        return None
    if not all(0 <= i <= highest for i in given) or len(set(given)) != len(given):
        problems.add(at, f"gpus: each index once, from 0 to {highest}: {show(given)}")
        return None
    return tuple(given)


def env_of(item: tuple[int, Any], problems: Problems) -> dict[str, str]:
    at, given = item
    if not isinstance(given, dict):
        problems.add(at, f"env: expected NAME: value lines, not {show(given)}")
        return {}
    env: dict[str, str] = {}
    for name, raw in given.items():
        if not ENV_NAME.fullmatch(name):
            problems.add(at, f"env: {show(name)} is not a variable name")
        elif isinstance(raw, bool) or not isinstance(raw, str | int | float):
            problems.add(at, f"env: {name}: expected text (quote it: '1'), not {show(raw)}")
        elif "\0" in str(raw):
            problems.add(at, f"env: {name}: a value cannot hold a NUL character")
        else:
            env[name] = str(raw)
    return env
