"""Bounds on the numbers a model's files state, and a short way to write any number.

A config.json or a header is anyone's bytes: `max_position_embeddings` may have 400 digits, a
tensor's shape `[2**62] * 20`. A value past its bound is not believed: the field is left
empty and the entry gets a problem naming the value in a few characters (`rough`), never a
traceback (`OverflowError` from a float conversion, `ValueError` from a 4,300-digit `str`)
nor a 150-digit figure on screen. The bounds are far above any real model (10x to 1000x the
largest known), so a real file never meets them.
"""

from __future__ import annotations

import math

MAX_PARAMS = 10**14  # parameters of a model (the largest are ~2e12)
MAX_CONTEXT = 10**8  # tokens of context (the longest are ~1e7)
MAX_DIM = 2**40  # one tensor dimension, a hidden size, a head size
MAX_COUNT = 10**6  # layers, heads, experts
MAX_ROPE_FACTOR = 10**4  # rope scaling factors are 2 to 64


def plausible(value: int, bound: int) -> bool:
    """Whether an int read from a file is within 1..bound."""
    return 0 < value <= bound


def rough(value: object) -> str:
    """A number in at most a dozen characters: `4096`, `4.6e18`, `1e400`, `inf`, `nan`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return type(value).__name__
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if -(10**12) < value < 10**12:
        return str(value) if isinstance(value, int) else f"{value:.4g}"
    sign = "-" if value < 0 else ""
    exponent = math.log10(abs(value))  # exact enough for ints of any size, no float overflow
    whole = math.floor(exponent)
    mantissa = round(10 ** (exponent - whole), 1)
    if mantissa >= 10:
        mantissa, whole = mantissa / 10, whole + 1
    digits = f"{mantissa:.1f}".removesuffix(".0")
    return f"{sign}{digits}e{whole}"


def implausible(what: str, value: object, where: str) -> str:
    """The problem for a value past its bound, e.g. "implausible context length 1e400 in
    config.json"."""
    return f"implausible {what} {rough(value)} in {where}"
