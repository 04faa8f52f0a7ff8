"""When each request of a step is sent: vLLM's benchmark schedule, for the console's client.

`vllm bench serve --request-rate R --burstiness B` spaces its requests by gaps drawn from a
gamma distribution of shape B and mean 1/R (B = 1 is a Poisson process, a larger B is more
even, B = inf exactly even), then scales the times so that the last request goes out at N/R;
R = inf sends every request at once. `--max-concurrency` still caps what is in flight: a
request whose time has come waits for a free slot. The console's client keeps the same
schedule (its own random draws: the distribution is the same, not the numbers), so both
clients put the same arrivals on the server.
"""

from __future__ import annotations

import math
import random

INF = math.inf
MAX_RATE = 1e6  # requests a second: beyond any server, short of float trouble


def arrival_times(count: int, rate: float, burstiness: float = 1.0, seed: int = 0) -> list[float]:
    """Seconds after the step's start at which each of `count` requests is due."""
    if count <= 0:
        return []
    if math.isinf(rate):
        return [0.0] * count
    if math.isinf(burstiness):
        return [(i + 1) / rate for i in range(count)]
    draw = random.Random(seed)
    scale = 1.0 / (rate * burstiness)
    times: list[float] = []
    at = 0.0
    for _ in range(count):
        at += draw.gammavariate(burstiness, scale)
        times.append(at)
    last = times[-1]
    if last <= 0.0:  # every gap drew zero (a tiny shape can): fall back to even spacing
        return [(i + 1) / rate for i in range(count)]
    stretch = (count / rate) / last
    return [t * stretch for t in times]


def describe_rate(rate: float, burstiness: float = 1.0) -> str:
    """How the requests arrive, in words: "all at once", "4 req/s (evenly)"."""
    if math.isinf(rate):
        return "all at once"
    if math.isinf(burstiness):
        how = "evenly"
    elif burstiness == 1.0:
        how = "Poisson"
    else:
        how = f"burstiness {burstiness:g}"
    return f"{rate:g} req/s ({how})"


def rate_json(value: float) -> float | str:
    """A rate or burstiness as a record keeps it: "inf" for infinity, as vLLM's result does
    (JSON has no infinity)."""
    return "inf" if math.isinf(value) else value


def rate_from_json(value: object, default: float) -> float:
    """A kept rate or burstiness read back; anything out of range is the default."""
    if value == "inf":
        return INF
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    number = float(value)
    if not 0.0 < number <= MAX_RATE:  # NaN too
        return default
    return number
