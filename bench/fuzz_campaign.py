"""A long fuzzing campaign over every parser of untrusted bytes.

    .venv/bin/python bench/fuzz_campaign.py [--examples 20000] [--seconds 600] [--only NAME]

The fast suite runs each property test on a bounded number of examples; this runs the same
checks (`tests/fuzz/strategies_*.py`, each module's `PARSERS`: name -> (check, strategies))
for longer: per parser and strategy, up to `--examples` inputs or its share of `--seconds`.
A check fails when the parser raises, takes over a second, or answers out of bounds; the
campaign goes on with the next parser and prints, per parser, the inputs tried and the
failures, with the smallest failing input hypothesis found.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tui")]

from hypothesis import HealthCheck, given, settings  # noqa: E402


@dataclass
class Tally:
    tried: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def parsers(only: str | None) -> dict[str, tuple[Callable[[Any], None], list[Any]]]:
    import tests.fuzz as fuzz

    found: dict[str, tuple[Callable[[Any], None], list[Any]]] = {}
    for info in pkgutil.iter_modules(fuzz.__path__):
        if not info.name.startswith("strategies_"):
            continue
        module = importlib.import_module(f"tests.fuzz.{info.name}")
        for name, (check, *strategies) in getattr(module, "PARSERS", {}).items():
            if only is None or only in name:
                found[name] = (check, list(strategies))
    return found


CHUNK = 200  # examples per hypothesis run; runs repeat (fresh random inputs) until time is up


def run(check: Callable[[Any], None], strategy: Any, examples: int, seconds: float) -> Tally:
    """Hypothesis runs of CHUNK examples each, until `examples` or `seconds` are spent (a
    run is not stopped midway, so the time may overrun by one run); the first failure, as
    hypothesis shrank it, ends this parser's campaign."""
    tally = Tally()

    def counted(data: Any) -> None:
        tally.tried += 1
        check(data)

    start = time.monotonic()
    while tally.tried < examples and time.monotonic() - start < seconds:
        chunk = settings(
            max_examples=min(CHUNK, examples - tally.tried),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )(given(strategy)(counted))
        try:
            chunk()
        except Exception as exc:
            tally.failures.append(f"{type(exc).__name__}: {str(exc)[:300]}")
            break
    tally.seconds = time.monotonic() - start
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20000, help="per parser and strategy")
    parser.add_argument("--seconds", type=float, default=600.0, help="the whole campaign")
    parser.add_argument("--only", help="only parsers whose name contains this")
    args = parser.parse_args()
    found = parsers(args.only)
    if not found:
        print("no parsers found", file=sys.stderr)
        return 2
    share = args.seconds / sum(len(strategies) for _, strategies in found.values())
    print(f"{len(found)} parsers, up to {args.examples} inputs or {share:.0f} s per strategy")
    print(f"{'parser':<22} {'strategy':>8} {'inputs':>8} {'seconds':>8} {'per s':>7}  failures")
    total, failed = 0, 0
    for name, (check, strategies) in found.items():
        for k, strategy in enumerate(strategies):
            tally = run(check, strategy, args.examples, share)
            kind = ("generated", "mutated")[k] if len(strategies) > 1 else "mixed"
            rate = tally.tried / tally.seconds if tally.seconds else 0.0
            print(
                f"{name:<22} {kind:>8} {tally.tried:>8} {tally.seconds:>8.1f} {rate:>7.0f}  "
                f"{len(tally.failures)}",
                flush=True,
            )
            for failure in tally.failures:
                print(f"    {failure}")
            total += tally.tried
            failed += len(tally.failures)
    print(f"total: {total} inputs tried, {failed} failing parser/strategy pairs")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
