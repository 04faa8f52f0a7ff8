"""Fuzzing the fleet file: any bytes, and YAML that is well formed but hostile (aliases,
tags, deep nesting, huge numbers, control characters, wrong types under real keys), give
a FleetFile or a FleetFileError within LIMIT, never another exception; and any fleet the
console could hold comes back equal from `dump_fleet` through `parse_fleet`.

`PARSERS` pairs each check with its strategies for bench/fuzz_campaign.py.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from vllm_console.config import Settings
from vllm_console.core.fleet import flags
from vllm_console.core.fleet.entry import SPEC_FIELDS
from vllm_console.core.fleet.file import FleetFileError, dump_fleet, parse_fleet
from vllm_console.core.fleet.model import Member, Source
from vllm_console.core.fleet.values import is_name
from vllm_console.core.serve.redact import is_secret_name
from vllm_console.core.serve.spec import LaunchSpec, launch_env, serve_args

LIMIT = 1.0  # seconds per input
PATH = Path("fleets/fleet.yaml")
SETTINGS = Settings(home=Path("/home/u"), cwd=Path("/work"), api_key="from-the-env")
TABLE = flags.table()
KEYS = [*TABLE.names(), "name", "gpus", "env", "safe-mode", "url", "max_model_len", "modle"]
HOSTILE_TEXT = ["", "\x1b[31m", "\u202e", "a\nb", "9" * 60, "1e999", ".nan", "-.inf", "~"]
HOSTILE_TEXT += ["0x" + "f" * 50, "1:2:3:4:5", "*a", "&a", "!!python/object:os.system"]


def _timed(what: str, call: Callable[[], Any]) -> Any:
    began = time.perf_counter()
    try:
        result = call()
    except FleetFileError as exc:
        result = exc
    except Exception as exc:  # any other exception is the finding
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from exc
    took = time.perf_counter() - began
    assert took < LIMIT, f"{what} took {took:.2f} s"
    return result


def check_fleet_file(raw: bytes | str) -> None:
    """A FleetFile whose servers can launch, or a FleetFileError whose every problem is
    one printable line naming the file and a line."""
    result = _timed("parse_fleet", lambda: parse_fleet(raw, PATH, SETTINGS))
    if isinstance(result, FleetFileError):
        assert result.problems
        for problem in result.problems:
            assert problem.isprintable(), problem
            assert problem.startswith(f"{PATH} line "), problem
        return
    names = [member.name for member in result.members]
    assert result.members and len(set(names)) == len(names)
    for member in result.members:
        assert is_name(member.name)
        if member.spec is not None:
            argv = serve_args(member.spec)
            assert all("\0" not in arg for arg in argv)
            launch_env(member.spec, hf_endpoint=None)
            json.dumps(member.spec.to_json())


def _hostile_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([10**40, -(10**30), 2**63, 65536, 0, -1, 1.5, 1e308]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(HOSTILE_TEXT),
        st.text(max_size=12),
    )


def _values() -> st.SearchStrategy[Any]:
    return st.recursive(
        _hostile_scalars(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
        max_leaves=6,
    )


def _entries() -> st.SearchStrategy[dict[str, Any]]:
    real = st.fixed_dictionaries(
        {"model": st.sampled_from(["/m/a", "./m", "org/name", "~/m"])},
        optional={
            "port": st.sampled_from([8000, 8001, 80, 0, 70000]),
            "gpus": st.sampled_from([[0], [0, 1], "0,1", [], [0, 0], 3]),
            "gpu-memory-utilization": st.sampled_from([0.5, 0.6, 1.0, 1.5, 0]),
            "tensor-parallel-size": st.integers(-1, 4),
        },
    )
    noise = st.dictionaries(st.sampled_from(KEYS), _values(), max_size=4)
    return st.builds(lambda a, b: {**a, **b}, real, noise)


def _documents() -> st.SearchStrategy[Any]:
    entries = st.dictionaries(st.text(min_size=1, max_size=8), _entries(), max_size=4)
    listed = st.lists(_entries(), max_size=4)
    return st.one_of(
        st.fixed_dictionaries({"servers": entries | listed}),
        st.dictionaries(st.sampled_from(["servers", "server", "x"]), _values(), max_size=2),
        _values(),
    )


def _dump(document: Any) -> str:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


SNIPPETS = ["&a ", "*a", "<<: *a\n", "!!python/object/apply:os.system [id] ", "---\n"]
SNIPPETS += ["[" * 200, "{", "\t", "\x00", "\x1b", ": ", "- ", "? ", "%YAML 1.1\n", "!x "]
BOMBS = [
    'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
    "c: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nservers: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n",
    "servers: &s {a: {model: m, x: *s}}\n",
    "servers:\n" + "".join(f"  s{i}: {{model: m, port: {8000 + i % 3}}}\n" for i in range(300)),
    "servers: " + "[" * 5000 + "]" * 5000 + "\n",
    "servers:\n  a: {model: m, seed: " + "9" * 5000 + "}\n",
]


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    text = _dump(draw(_documents()))
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 6))
        text = text[:where] + draw(st.sampled_from(SNIPPETS)) + text[where + cut :]
    return text


generated_fleet_files = st.one_of(st.binary(max_size=300), _documents().map(_dump))
mutated_fleet_files = st.one_of(_mutated(), st.sampled_from(BOMBS))


# Round trip: fleets the console could hold (valid names, one port each, whole GPUs).
SAFE_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Zl", "Zp"]),
    min_size=1,
    max_size=12,
)
EXTRA_FLAGS = sorted(
    name
    for name in TABLE.names()
    # hf-token is refused (a secret); data parallel size changes which GPUs count
    if name not in SPEC_FIELDS and name not in ("data-parallel-size", "hf-token")
)
ENV_NAMES = st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: not is_secret_name(name) and name != "CUDA_VISIBLE_DEVICES"
)
SAFE_MODE_KEPT = ["enforce_eager", "max_model_len", "gpu_memory_utilization"]


@st.composite
def _extra_args(draw: st.DrawFn) -> str:
    args: list[str] = []
    for name in draw(st.lists(st.sampled_from(EXTRA_FLAGS), max_size=4, unique=True)):
        flag = TABLE.flags[name]
        item = draw(_item(flag))
        given = [item] if flag.multiple else item
        args += flags.to_args(flag, given)
    return shlex.join(args)


def _item(flag: flags.Flag) -> st.SearchStrategy[Any]:
    if not flag.takes_value:
        return st.booleans()
    if flag.choices:
        return st.sampled_from(flag.choices)
    return {
        "int": st.integers(0, 10**6),
        "float": st.floats(0, 100, allow_nan=False),
        "size": st.integers(0, 10**6) | st.sampled_from(["32k", "2G"]),
        "size_or_auto": st.sampled_from([-1, "auto", 4096]),
        "json": st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5)),
    }.get(flag.kind, SAFE_TEXT.filter(lambda t: not t.startswith("-")))


@st.composite
def _local(draw: st.DrawFn, name: str, port: int, first_gpu: int) -> Member:
    tp, pp = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    pinned = draw(st.booleans())
    hub = draw(st.booleans())
    spec = LaunchSpec(
        model="org/model" if hub else f"/models/{name}",
        model_is_local=not hub,
        served_model_name=draw(st.none() | SAFE_TEXT.filter(str.isprintable)),
        host=SETTINGS.host,
        port=port,
        gpu_memory_utilization=draw(st.none() | st.floats(0.01, 1.0)),
        max_model_len=draw(st.none() | st.integers(1, 10**8)),
        dtype=draw(st.none() | st.sampled_from([str(c) for c in TABLE.flags["dtype"].choices])),
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        quantization=draw(st.none() | st.sampled_from(["awq", "gptq", "fp8"])),
        enforce_eager=draw(st.booleans()),
        trust_remote_code=draw(st.booleans()),
        api_key=SETTINGS.api_key,
        extra_args=draw(_extra_args()),
        extra_env=draw(st.dictionaries(ENV_NAMES, SAFE_TEXT, max_size=2)),
        gpus=tuple(range(first_gpu, first_gpu + tp * pp)) if pinned else None,
    )
    if draw(st.booleans()):  # safe mode, some of its values overridden
        kept = draw(st.sets(st.sampled_from(SAFE_MODE_KEPT)))
        spec = replace(spec.with_safe_mode(), **{k: getattr(spec, k) for k in kept})
    return Member(name, spec=spec)


@st.composite
def fleets(draw: st.DrawFn) -> list[Member]:
    one_name = st.from_regex(r"[a-z][a-z0-9._-]{0,10}", fullmatch=True).filter(is_name)
    names = draw(st.lists(one_name, min_size=1, max_size=4, unique=True))
    members: list[Member] = []
    for k, name in enumerate(names):
        if draw(st.integers(0, 3)) == 0:
            host = draw(st.sampled_from(["gpu-box", "10.0.0.2", "example.org"]))
            members.append(Member(name, url=f"http://{host}:{8000 + k}", api_key=SETTINGS.api_key))
        else:
            members.append(draw(_local(name, 9000 + k, 8 * k)))
    return members


def check_round_trip(members: list[Member]) -> None:
    """dump -> parse gives the same members (where they came from aside)."""
    text = dump_fleet(members, SETTINGS)
    assert "from-the-env" not in text  # the API key is never written
    back = parse_fleet(text, Path("/saved/fleet.yaml"), SETTINGS).members
    assert [replace(m, source=Source("x")) for m in back] == [
        replace(m, source=Source("x")) for m in members
    ], text


# parser name -> (its check, generated inputs, mutated inputs), for bench/fuzz_campaign.py
# (the round trip has one strategy: the campaign calls it "mixed")
PARSERS: dict[str, tuple[Any, ...]] = {
    "fleet_file": (check_fleet_file, generated_fleet_files, mutated_fleet_files),
    "fleet_round_trip": (check_round_trip, fleets()),
}
