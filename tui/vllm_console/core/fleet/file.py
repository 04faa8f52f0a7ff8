"""The fleet file: several servers in one YAML file, read and written.

    servers:
      chat:                       # the server's name
        model: Qwen/Qwen3-8B      # vLLM's own keys, as in `vllm serve --config FILE`
        max-model-len: 8192
        gpus: [0]                 # the console's own: gpus, env, safe-mode, url
      embed:
        model: ./models/bge-m3    # relative to this file's folder
        gpus: "1"
        gpu-memory-utilization: 0.5
      team:
        url: http://gpu-box:8000  # a server that runs elsewhere

`servers` may also be a list of entries, each with its `name`. Every problem of a file
is collected, each "FILE line N: what is wrong", before anything starts (`FleetFileError`).
A file is read without trust: capped, never waiting on a FIFO, YAML composed without
aliases (see `yamlread`).

Defaults: host, GPU memory share, max model length and API key come from the settings;
a server without a port gets the settings' port, or the next one no other entry uses;
tensor parallel size follows the number of `gpus`. Two servers pinned to one GPU must not
ask for more than all of it together (vLLM's gpu-memory-utilization is a share of the
whole GPU, not of what is free); servers without `gpus` are not counted there: they take
whatever GPUs they inherit, which the file cannot know.

Saving (`dump_fleet`, `save_fleet`, in `dump`) writes the same format back.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, replace
from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from vllm_console.config import Settings
from vllm_console.core.files import read_capped, reason
from vllm_console.core.fleet.dump import dump_fleet, save_fleet
from vllm_console.core.fleet.entry import Draft, read_entry
from vllm_console.core.fleet.model import Member, unique_name
from vllm_console.core.fleet.values import FleetFileError, Problems, is_name, show, suggest
from vllm_console.core.fleet.yamlread import YamlError, compose, line_of
from vllm_console.core.text import visible

__all__ = ["FleetFile", "FleetFileError", "dump_fleet", "load_fleet", "parse_fleet", "save_fleet"]

FILE_LIMIT = 256 * 1024  # a fleet of a hundred servers is a few KB
SERVERS_LIMIT = 256  # more than any box or team runs; checks compare servers in pairs
SERVERS = "servers"
VLLM_DEFAULT_UTILIZATION = 0.92  # vLLM 0.32's gpu-memory-utilization when not given
ANY_HOST = {"0.0.0.0", "::", ""}
NAMED = 4  # servers a message names before "and N more"


@dataclass(frozen=True)
class FleetFile:
    path: Path
    members: tuple[Member, ...]


def load_fleet(path: Path, settings: Settings) -> FleetFile:
    """The fleet in the file at `path`; FleetFileError naming every problem."""
    try:
        raw = read_capped(path, FILE_LIMIT)
    except OSError as exc:
        why = reason(exc)
        if exc.errno == errno.EFBIG:
            why = f"over {FILE_LIMIT // 1024} KiB: not a fleet file"
        raise FleetFileError([visible(f"{path}: {why}")]) from None
    return parse_fleet(raw, path, settings)


def parse_fleet(text: bytes | str, path: Path, settings: Settings) -> FleetFile:
    """The fleet in a fleet file's text (`path` as the user gave it: messages name it, and
    relative model folders are relative to its folder); FleetFileError naming every
    problem."""
    problems = Problems(str(path))
    root = _root(text, problems)
    servers = _servers(root, problems) if root is not None else None
    if servers is None:
        raise FleetFileError(problems.lines())
    drafts = [
        draft
        for name, node in servers
        if (draft := read_entry(node, name, path, settings, problems)) is not None
    ]
    _check_names(drafts, problems)
    _name_the_rest(drafts)
    _assign_ports(drafts, settings.port)
    _check_ports(drafts, problems)
    _check_gpus(drafts, problems)
    if problems.found:
        raise FleetFileError(problems.lines())
    return FleetFile(path, tuple(draft.member for draft in drafts))


def _root(given: bytes | str, problems: Problems) -> Node | None:
    if isinstance(given, bytes):
        try:
            text = given.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            problems.add(given.count(b"\n", 0, exc.start) + 1, "not UTF-8 text")
            return None
    else:
        text = given
    try:
        root = compose(text)
    except YamlError as exc:
        problems.add(exc.line, f"not YAML: {exc.what}")
        return None
    if root is None:
        problems.add(1, f"empty: a fleet file lists its servers under `{SERVERS}:`")
    return root


def _servers(root: Node, problems: Problems) -> list[tuple[str | None, Node]] | None:
    """(name, entry) for each server; the name is None in the list form."""
    if not isinstance(root, MappingNode):
        problems.add(line_of(root), f"expected `{SERVERS}:` with the servers under it")
        return None
    found: Node | None = None
    for key, node in root.value:
        word = key.value if isinstance(key, ScalarNode) else "?"
        if word != SERVERS:
            problems.add(line_of(key), f"unknown key {show(word)}{suggest(word, [SERVERS])}")
        elif found is not None:
            problems.add(line_of(key), f"`{SERVERS}` is given twice")
        else:
            found = node
    if found is None:
        if not problems.found:
            problems.add(line_of(root), f"no `{SERVERS}:` (the servers are listed under it)")
        return None
    before = len(problems.found)
    entries = _entries(found, problems)
    if not entries and len(problems.found) == before:
        problems.add(line_of(found), f"no servers under `{SERVERS}:`")
    if len(entries) > SERVERS_LIMIT:
        problems.add(line_of(found), f"more than {SERVERS_LIMIT} servers")
        return None
    return entries


def _entries(node: Node, problems: Problems) -> list[tuple[str | None, Node]]:
    if isinstance(node, SequenceNode):
        return [(None, item) for item in node.value]
    if isinstance(node, MappingNode):
        entries: list[tuple[str | None, Node]] = []
        for key, item in node.value:
            if isinstance(key, ScalarNode):
                entries.append((key.value, item))
            else:
                problems.add(line_of(key), "a server's name must be a single word")
        return entries
    if isinstance(node, ScalarNode) and node.value == "":
        return []
    problems.add(line_of(node), f"`{SERVERS}:` holds a mapping of names or a list of entries")
    return []


def _check_names(drafts: list[Draft], problems: Problems) -> None:
    first: dict[str, Draft] = {}
    for draft in drafts:
        if not draft.name:
            continue
        if draft.name in first:
            problems.add(
                draft.line,
                f"the name {show(draft.name)} is taken (line {first[draft.name].line})",
            )
        else:
            first[draft.name] = draft


def _name_the_rest(drafts: list[Draft]) -> None:
    """A list entry without `name`: its served model name (or model, or URL), unique."""
    taken = {draft.name for draft in drafts if draft.name}
    for draft in drafts:
        if draft.name:
            continue
        member = draft.member
        wanted = member.served_name or (member.url or "").split("://")[-1]
        name = unique_name(wanted, taken)
        if not is_name(name):  # a served name of dots alone
            name = unique_name("server", taken)
        taken.add(name)
        draft.name = name
        draft.member = replace(member, name=name)


def _assign_ports(drafts: list[Draft], first_port: int) -> None:
    used = {d.member.spec.port for d in drafts if d.member.spec is not None and d.port_given}
    port = first_port
    for draft in drafts:
        spec = draft.member.spec
        if spec is None or draft.port_given:
            continue
        while port in used and port < 65535:
            port += 1
        used.add(port)
        draft.member = replace(draft.member, spec=replace(spec, port=port))


def _check_ports(drafts: list[Draft], problems: Problems) -> None:
    """Two local servers on one port of one host (any host, for 0.0.0.0): the first one
    that holds it is named."""
    seen: dict[int, list[Draft]] = {}
    for draft in drafts:
        spec = draft.member.spec
        if spec is None:
            continue
        for other in seen.get(spec.port, []):
            hosts = {spec.host, other.member.spec.host if other.member.spec else ""}
            if len(hosts) == 1 or hosts & ANY_HOST:
                problems.add(
                    draft.lines.get("port", draft.line),
                    f"port {spec.port} on {show(spec.host)} is taken by {show(other.name)} "
                    f"(line {other.lines.get('port', other.line)})",
                )
                break
        seen.setdefault(spec.port, []).append(draft)


def _check_gpus(drafts: list[Draft], problems: Problems) -> None:
    """Servers pinned to a GPU must not ask for more than all of its memory together."""
    sharing: dict[int, list[Draft]] = {}
    for draft in drafts:
        for gpu in draft.member.gpus or ():
            sharing.setdefault(gpu, []).append(draft)
    reported: set[tuple[str, ...]] = set()
    for gpu, group in sorted(sharing.items()):
        shares = [_share(draft) for draft in group]
        names = tuple(draft.name for draft in group)
        if sum(shares) <= 1.0 + 1e-9 or names in reported:
            continue
        reported.add(names)
        who = ", ".join(
            f"{show(d.name)} (line {d.lines.get('gpus', d.line)}: {share:g})"
            for d, share in list(zip(group, shares, strict=True))[:NAMED]
        )
        who += f" and {len(group) - NAMED} more" if len(group) > NAMED else ""
        last = group[-1]
        problems.add(
            last.lines.get("gpus", last.line),
            f"GPU {gpu} is shared by {who}: vLLM takes that share of the whole GPU each, "
            f"{sum(shares):g} in all; lower gpu-memory-utilization so they add up to 1 at most",
        )


def _share(draft: Draft) -> float:
    spec = draft.member.spec
    assert spec is not None
    share = spec.gpu_memory_utilization
    return VLLM_DEFAULT_UTILIZATION if share is None else share
