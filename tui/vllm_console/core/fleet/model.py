"""What a fleet is made of, shared by the fleet file, `up`, `ps` and the console.

A member is either local (a `LaunchSpec` the console or `up` starts) or remote (a URL that
something else serves). Both have a name, unique in their fleet. Where a member came from
(`source`: a fleet file's path and line, "console", "VLLM_BASE_URL") is kept for messages.
A member may later be a multi-node server: `nodes` is where that would go (1 for now).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from vllm_console.core.serve.spec import LaunchSpec

NAME_LIMIT = 64
NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Source:
    """Where a member was declared: a file and a line, or a word ("console", "VLLM_BASE_URL")."""

    where: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.where} line {self.line}" if self.line is not None else self.where


@dataclass(frozen=True)
class Member:
    """One server of a fleet. Exactly one of `spec` (local) and `url` (remote) is set.

    `url` is the server's base URL without `/v1` (e.g. "http://gpu-box:8000"); `api_key`
    is a remote member's key (a local member's key is in its spec).
    """

    name: str
    spec: LaunchSpec | None = None
    url: str | None = None
    api_key: str | None = None
    source: Source = field(default_factory=lambda: Source("console"))
    nodes: int = 1

    def __post_init__(self) -> None:
        if (self.spec is None) == (self.url is None):
            raise ValueError("a member is either local (a spec) or remote (a URL)")

    @property
    def local(self) -> bool:
        return self.spec is not None

    @property
    def gpus(self) -> tuple[int, ...] | None:
        return self.spec.gpus if self.spec is not None else None

    @property
    def served_name(self) -> str:
        """The model name clients ask for (a remote member's is learnt from /v1/models)."""
        spec = self.spec
        if spec is None:
            return ""
        return spec.served_model_name or spec.model


@dataclass(frozen=True)
class FleetContext:
    """What the launch dialog must know of the servers already running: their names and
    ports (a new one takes neither), and the memory each holds on each GPU (bytes, by NVML
    index), which the fit estimate counts as taken."""

    names: frozenset[str] = frozenset()
    ports: frozenset[int] = frozenset()
    held: Mapping[int, int] = field(default_factory=dict)


def slug(text: str) -> str:
    """A name's form: letters, digits, '.', '_' and '-', at most NAME_LIMIT characters."""
    base = text.rstrip("/").rsplit("/", 1)[-1]
    return NAME_CHARS.sub("-", base).strip("-")[:NAME_LIMIT] or "server"


def unique_name(wanted: str, taken: Iterable[str]) -> str:
    """`wanted` as a name (see `slug`), with -2, -3, ... added until no other member has it."""
    base = slug(wanted)
    used = set(taken)
    if base not in used:
        return base
    n = 2
    while f"{base[: NAME_LIMIT - len(str(n)) - 1]}-{n}" in used:
        n += 1
    return f"{base[: NAME_LIMIT - len(str(n)) - 1]}-{n}"


def endpoint_name(url: str, taken: Iterable[str]) -> str:
    """A remote member's default name: host:port of its URL (as `gpu-box-8000`), unique."""
    parts = urlsplit(url)
    host = parts.hostname or "remote"
    return unique_name(f"{host}:{parts.port}" if parts.port else host, taken)
