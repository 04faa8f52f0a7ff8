"""What a benchmark points at, on its own: the Bench tab holds one from the first frame on,
long before it imports the sweep (and the sweep its HTTP and metrics machinery)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchTarget:
    """What a benchmark points at: an endpoint, with the launch behind it when the console
    started it (its name and command line are kept with the result)."""

    base_url: str
    api_key: str | None = None
    model: str | None = None
    source: str = "endpoint"  # "local server", "remote server" or "endpoint"
    server_name: str | None = None
    launch_argv: tuple[str, ...] = ()
