"""The settings of a benchmark as a person types them, checked: the command's flags and the
Bench tab's form share these, so both name a bad value the same way."""

from __future__ import annotations

import math
from pathlib import Path

from vllm_console.core.bench.arrivals import INF, MAX_RATE

MAX_LEVELS = 32
MAX_CONCURRENCY = 4096
MAX_PROMPTS = 1_000_000
MAX_LEN = 1_000_000


class BadArgument(ValueError):
    """A value that cannot be used; the message names it and says what would do."""


def parse_levels(text: str, name: str = "--concurrency") -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise BadArgument(f"{name}: {text!r} is not a list like 1,4,16") from None
    if not levels or len(levels) > MAX_LEVELS:
        raise BadArgument(f"{name}: between 1 and {MAX_LEVELS} levels")
    if any(not 1 <= c <= MAX_CONCURRENCY for c in levels):
        raise BadArgument(f"{name}: each level from 1 to {MAX_CONCURRENCY}")
    return levels


def parse_dataset(words: list[str], name: str = "--dataset") -> tuple[str, Path | None]:
    if words == ["random"]:
        return "random", None
    if len(words) == 2 and words[0] == "sharegpt":
        path = Path(words[1]).expanduser()
        if not path.is_file():
            raise BadArgument(f"{name} sharegpt: no file {words[1]!r}")
        return "sharegpt", path
    raise BadArgument(f"{name}: 'random', or 'sharegpt PATH'")


def bounded(name: str, value: int, limit: int) -> int:
    if not 1 <= value <= limit:
        raise BadArgument(f"{name}: from 1 to {limit:,}")
    return value


def parse_count(name: str, text: str, limit: int) -> int:
    """A whole number typed into a form, from 1 to `limit`."""
    try:
        value = int(text.strip().replace("_", "").replace(",", ""))
    except ValueError:
        raise BadArgument(f"{name}: {text.strip()!r} is not a whole number") from None
    return bounded(name, value, limit)


MIN_RATE = 0.001
MIN_BURSTINESS, MAX_BURSTINESS = 0.01, 1000.0


def _number_or_inf(name: str, text: str, low: float, high: float, unit: str, empty: float) -> float:
    """A number from `low` to `high`, or "inf"; `empty` when nothing is typed."""
    word = text.strip().lower()
    if not word:
        return empty
    if word in ("inf", "infinity"):
        return INF
    try:
        value = float(word.replace("_", ""))
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # NaN and written-out infinities of the wrong sign too
        raise BadArgument(f"{name}: {text.strip()!r}: give {low:g} to {high:g} {unit}, or inf")
    return value


def parse_rate(text: str, name: str = "--request-rate") -> float:
    """Requests a second the step sends at; inf (or nothing) sends them all at once."""
    return _number_or_inf(name, text, MIN_RATE, MAX_RATE, "requests a second", INF)


def parse_burstiness(text: str, name: str = "--burstiness") -> float:
    """The gamma shape of the gaps between requests: 1 (or nothing) Poisson, larger more
    even, inf evenly spaced."""
    return _number_or_inf(name, text, MIN_BURSTINESS, MAX_BURSTINESS, "(1 is Poisson)", 1.0)
