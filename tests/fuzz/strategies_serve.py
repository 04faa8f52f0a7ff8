"""Fuzzing the parsers of `core.serve`: vLLM's log lines (phases, diagnosis), the run
archive's records, saved specs, and the log redaction.

Each `check_<parser>(data)` feeds one input and raises AssertionError when the parser raises,
takes over LIMIT seconds, or returns something a screen could not show. The strategies start
from vLLM's real lines (the stand-in's text blocks, which quote vLLM 0.32) and mutate them:
characters dropped, inserted or swapped, figures blown up to hundreds of digits, lines repeated
to 100 KB. `CHECKS` pairs each check with its strategy for bench/fuzz_campaign.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.fakes import fake_vllm
from vllm_console.config import Settings
from vllm_console.core.fleet.file import FleetFileError, dump_fleet
from vllm_console.core.fleet.model import Member
from vllm_console.core.serve.diagnose import MILESTONES, Finding, Phase, diagnose, next_phase
from vllm_console.core.serve.process import read_batches, split_lines
from vllm_console.core.serve.redact import REDACTED, redact_text
from vllm_console.core.serve.runs import RunInfo, parse_record
from vllm_console.core.serve.spec import SpecError, launch_env, parse_saved_specs, serve_args

LIMIT = 1.0  # seconds per input
RUN_DIR = Path("/nonexistent/runs/20260101-000000-x")


def _seed_lines() -> list[str]:
    blocks = [v for k, v in vars(fake_vllm).items() if k.isupper() and isinstance(v, str)]
    blocks += list(fake_vllm.CAUSES.values())
    lines = [line.removeprefix("> ") for block in blocks for line in block.splitlines()]
    prefix = "(APIServer pid=4242) INFO 11-26 11:06:12 [api_server.py:1234] "
    return sorted({line for line in lines if line.strip()} | {prefix + x for x in lines[:20]})


SEED_LINES = _seed_lines()
HUGE_NUMBERS = ["9" * 400, "1" * 5000, "1e999", "-1", "0", "nan", ",", "..", "1.2.3", ",,,"]


@st.composite
def _mutated(draw: st.DrawFn, seeds: list[str]) -> str:
    line = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.integers(0, len(line)))
        kind = draw(st.sampled_from(["drop", "insert", "number", "swap"]))
        if kind == "drop":
            line = line[:where] + line[where + draw(st.integers(1, 20)) :]
        elif kind == "insert":
            line = line[:where] + draw(st.text(max_size=20)) + line[where:]
        elif kind == "number":
            line = line[:where] + draw(st.sampled_from(HUGE_NUMBERS)) + line[where:]
        else:
            other = draw(st.sampled_from(seeds))
            line = line[:where] + other[where:]
    return line


@st.composite
def _long(draw: st.DrawFn) -> str:
    """A line of about 100 KB: one seed (or a pattern's start) over and over."""
    piece = draw(
        st.sampled_from(
            [*SEED_LINES[:5], "max seq len (1)", "Free memory on device x (", "[Errno 98"]
        )
    )
    return (piece * (100_000 // max(1, len(piece)) + 1))[:100_000]


def log_lines() -> st.SearchStrategy[str]:
    """One line of a vLLM log: real, mutated, random, or 100 KB long."""
    return st.one_of(
        st.sampled_from(SEED_LINES),
        _mutated(SEED_LINES),
        st.text(max_size=200),
        _long(),
    )


def log_tails() -> st.SearchStrategy[list[str]]:
    """A log's last lines, as the diagnosis reads them."""
    return st.lists(log_lines(), max_size=12)


def _timed(what: str, call: Callable[[], Any]) -> Any:
    began = time.perf_counter()
    try:
        result = call()
    except Exception as exc:  # any exception is the finding
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from exc
    took = time.perf_counter() - began
    assert took < LIMIT, f"{what} took {took:.2f} s"
    return result


def check_next_phase(line: str) -> None:
    """From every phase: a phase, never backwards, READY only from READY."""
    order = list(Phase)
    milestones = {phase for _, phase in MILESTONES}
    for current in Phase:
        phase = _timed("next_phase", lambda c=current: next_phase(c, line))  # type: ignore[misc]
        assert isinstance(phase, Phase)
        forward = phase in milestones and order.index(phase) > order.index(current)
        assert phase is current or forward


def check_diagnose(lines: list[str]) -> None:
    """Findings, each once, with short text and a fix a launch could use."""
    findings = _timed("diagnose", lambda: diagnose(lines))
    assert isinstance(findings, list)
    assert len({f.rule for f in findings}) == len(findings)
    for finding in findings:
        assert isinstance(finding, Finding)
        assert len(finding.line) <= 300 and len(finding.cause) < 400 and len(finding.hint) < 400
        if finding.fix is not None:
            field, value = finding.fix.field, finding.fix.value
            if field == "max_model_len":
                assert isinstance(value, int) and 1 <= value <= 10**8
            elif field == "tensor_parallel_size":
                assert isinstance(value, int) and 1 <= value <= 64
            elif field == "dtype":
                assert value == "half"
            else:
                assert field == "gpu_memory_utilization"
                assert isinstance(value, float) and 0 < value <= 1


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
        st.sampled_from([10**400, -(10**30), 1e308]),
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=10,
    )


def _dump(value: Any) -> bytes:
    return json.dumps(value).encode()


def _record_fields() -> st.SearchStrategy[dict[str, Any]]:
    good: dict[str, Any] = {
        "id": "20260101-000000-x",
        "model": "org/m",
        "argv": ["vllm", "serve", "/m"],
        "env": {"HF_HUB_OFFLINE": "1"},
        "started": 1.7e9,
        "port": 8000,
        "pid": 4242,
        "status": "stopped",
        "ended": 1.7e9 + 60,
        "returncode": 0,
        "reason": "stopped by the user",
        "phases": [["starting", 1.5]],
        "findings": [],
        "spec": {"model": "/m", "port": 8000, "gpus": [0], "extra_env": {"A": "1"}},
    }
    spec_keys = ["model", "port", "gpus", "extra_env", "extra_args", "max_model_len", "x"]
    spec = st.dictionaries(st.sampled_from(spec_keys), _json_values(), max_size=3).map(
        lambda changes: {**good["spec"], **changes}
    )
    return st.tuples(
        st.dictionaries(st.sampled_from(sorted(good)), _json_values(), max_size=4),
        st.none() | spec,
    ).map(lambda drawn: {**good, **drawn[0], **({"spec": drawn[1]} if drawn[1] else {})})


def _bytes_from(documents: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """JSON documents, mutated byte-wise now and then, or raw bytes, or deep nesting."""

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        raw = _dump(draw(documents))
        for _ in range(draw(st.integers(0, 3))):
            where = draw(st.integers(0, len(raw)))
            raw = raw[:where] + draw(st.binary(max_size=8)) + raw[where + draw(st.integers(0, 8)) :]
        return raw

    deep = st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n)
    return st.one_of(documents.map(_dump), mutated(), st.binary(max_size=200), deep)


def run_records() -> st.SearchStrategy[bytes]:
    """A run.json's bytes."""
    return _bytes_from(_record_fields())


def check_run_record(raw: bytes) -> None:
    """A RunInfo or None; a RunInfo a table can format and `runs --json` can print."""
    run = _timed("parse_record", lambda: parse_record(RUN_DIR, raw))
    if run is None:
        return
    assert isinstance(run, RunInfo)
    time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started))
    json.dumps(run.to_json())
    assert run.pid is None or 0 < run.pid < 1 << 22
    if run.spec is not None:  # Save fleet writes it: a file, or a problem named
        with contextlib.suppress(FleetFileError):
            dump_fleet([Member("m", spec=run.spec)], Settings(home=RUN_DIR))


def saved_specs_files() -> st.SearchStrategy[bytes]:
    """A launch-specs.json's bytes."""
    good = {"model": "/m", "port": 8000, "gpu_memory_utilization": 0.9, "extra_args": "--seed 1"}
    fields = ["model", "port", "gpu_memory_utilization", "max_model_len", "extra_args"]
    fields += ["extra_env", "enforce_eager", "tensor_parallel_size", "host", "api_key"]
    spec = st.dictionaries(st.sampled_from(fields), _json_values(), max_size=4).map(
        lambda changes: {**good, **changes}
    )
    return _bytes_from(st.dictionaries(st.text(max_size=8), spec, max_size=3))


def check_saved_specs(raw: bytes) -> None:
    """Specs that become a command line (or a SpecError for bad extra args), never a crash."""
    specs = _timed("parse_saved_specs", lambda: parse_saved_specs(raw))
    for spec in specs.values():
        try:
            serve_args(spec)
            launch_env(spec, hf_endpoint=None)
        except SpecError:
            continue
        json.dumps(spec.to_json())


def texts_and_keys() -> st.SearchStrategy[tuple[str, str]]:
    keys = st.text(min_size=1, max_size=12).filter(lambda k: "*" not in k)
    return st.tuples(st.one_of(log_lines(), st.text(max_size=50)), keys).map(
        lambda pair: (pair[0][:50] + pair[1] + pair[0][50:], pair[1])
    )


def check_redact(data: tuple[str, str]) -> None:
    """A key (without "*") never survives redaction."""
    text, key = data
    redacted = _timed("redact_text", lambda: redact_text(text, [key]))
    assert key not in redacted and REDACTED in redacted


@st.composite
def _output(draw: st.DrawFn) -> tuple[list[bytes], str]:
    """A server's output with a key in it, cut into the pieces the pipe brings."""
    lines = draw(st.lists(st.one_of(log_lines(), st.text(max_size=30)), max_size=8))
    key = draw(st.text(min_size=1, max_size=12).filter(lambda k: "*" not in k))
    key = "".join(c for c in key if len(f"a{c}b".splitlines()) == 1) or "k"  # one line
    ends = st.sampled_from(["\n", "\r\n", "\r", ""])
    text = "".join(line + draw(ends) for line in lines)
    at = draw(st.integers(0, len(text)))
    raw = (text[:at] + key + text[at:]).encode("utf-8", "surrogatepass")
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    return pieces, key


def server_output() -> st.SearchStrategy[tuple[list[bytes], str]]:
    return _output()


def check_output_batches(data: tuple[list[bytes], str]) -> None:
    """However the pipe cuts it, the lines are those of the whole output, the key hidden."""
    pieces, key = data

    async def read() -> list[str]:
        reader = asyncio.StreamReader()
        for piece in pieces:
            reader.feed_data(piece)
        reader.feed_eof()
        return [line async for batch in read_batches(reader, [key]) for line in batch]

    lines = _timed("read_batches", lambda: asyncio.run(read()))
    assert lines == split_lines(b"".join(pieces), [key])
    assert all(line and line == line.rstrip() for line in lines)
    assert not any(key in line for line in lines)


CHECKS: dict[str, tuple[Callable[[Any], None], Callable[[], st.SearchStrategy[Any]]]] = {
    "next_phase": (check_next_phase, log_lines),
    "diagnose": (check_diagnose, log_tails),
    "run_record": (check_run_record, run_records),
    "saved_specs": (check_saved_specs, saved_specs_files),
    "redact": (check_redact, texts_and_keys),
    "output_batches": (check_output_batches, server_output),
}

# The same, in the shape bench/fuzz_campaign.py reads from every strategies module:
# parser name -> (its check, its inputs).
PARSERS: dict[str, tuple[Callable[[Any], None], st.SearchStrategy[Any]]] = {
    name: (check, strategy()) for name, (check, strategy) in CHECKS.items()
}
