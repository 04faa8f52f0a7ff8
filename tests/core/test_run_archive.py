"""The run archive on disk: private modes, and hostile run folders that must not hang or crash
`RunArchive`, `vllm-console runs` (and `--log`) or the log follower."""

from __future__ import annotations

import json
import os
import shlex
import stat
import time
from pathlib import Path

import pytest

from vllm_console.commands.runs import cmd_runs
from vllm_console.config import Settings
from vllm_console.core.serve.attach import TAIL_BYTES, read_from
from vllm_console.core.serve.runs import META_LIMIT, RunArchive, log_tail, parse_record
from vllm_console.core.serve.spec import LaunchSpec, without_secrets


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, state_dir=tmp_path / "state" / "vllm-console")


def record(run_dir: Path, **changes: object) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {"id": run_dir.name, "model": "m", "argv": ["vllm"], "env": {}, "started": 1e9}
    (run_dir / "run.json").write_text(json.dumps({**data, **changes}))


def test_folders_are_0700_and_files_0600_whatever_the_umask(settings: Settings) -> None:
    state = settings.runs_dir.parent
    state.mkdir(parents=True, mode=0o755)
    os.chmod(state, 0o755)  # made by an older console
    old = os.umask(0)
    try:
        recorder = RunArchive(settings.runs_dir).new("org/m", ["vllm", "--api-key", "k"], {}, 1)
        recorder.write_lines(["a line"])
        recorder.finish(status="stopped", returncode=0, reason="r")
    finally:
        os.umask(old)
    run_dir = recorder.info.dir
    for folder in (state, settings.runs_dir, run_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for file in run_dir.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    assert sorted(p.name for p in run_dir.iterdir()) == ["log.txt", "run.json"]
    assert '"k"' not in (run_dir / "run.json").read_text()  # argv redacted


def test_hostile_run_folders_are_skipped(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    root = settings.runs_dir
    record(root / "20260101-000000-good")
    (root / "20260101-000001-fifo").mkdir(parents=True)
    os.mkfifo(root / "20260101-000001-fifo" / "run.json")
    huge = root / "20260101-000002-huge"
    huge.mkdir()
    with (huge / "run.json").open("wb") as handle:
        handle.truncate(META_LIMIT + 1)
    garbage = root / "20260101-000003-garbage"
    garbage.mkdir()
    (garbage / "run.json").write_bytes(b"\xff\x00{not json")
    deep = root / "20260101-000004-deep"
    deep.mkdir()
    (deep / "run.json").write_text("[" * 200_000 + "]" * 200_000)
    (root / "20260101-000005-link").mkdir()
    (root / "20260101-000005-link" / "run.json").symlink_to("/dev/zero")
    (root / "20260101-000006-a-file").write_text("not a folder")
    damaged: dict[str, dict[str, object]] = {
        "pid": {"pid": "1234"},
        "bigpid": {"pid": 10**30},
        "started": {"started": 1e300},
        "nan": {"started": float("nan")},
        "argv": {"argv": "vllm serve"},
        "env": {"env": ["A"]},
        "phases": {"phases": [["a", "b", "c"]]},
        "id": {"id": 7},
        "port": {"port": -1},
    }
    for name, changes in damaged.items():
        record(root / f"20260101-000007-{name}", **changes)
    began = time.monotonic()
    runs = RunArchive(root).all()
    assert time.monotonic() - began < 5
    assert [run.id for run in runs] == ["20260101-000000-good"]
    assert cmd_runs(settings, as_json=False, log_id=None) == 0
    assert cmd_runs(settings, as_json=True, log_id=None) == 0
    out = capsys.readouterr().out
    assert "20260101-000000-good" in out and "fifo" not in out


def test_runs_log_refuses_a_fifo_and_prints_the_end_of_a_huge_log(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo_run = settings.runs_dir / "20260101-000000-fifo"
    record(fifo_run)
    os.mkfifo(fifo_run / "log.txt")
    assert cmd_runs(settings, as_json=False, log_id=fifo_run.name) == 1
    assert "not a regular file" in capsys.readouterr().err
    big_run = settings.runs_dir / "20260101-000001-big"
    record(big_run)
    line = "x" * 99 + "\n"
    (big_run / "log.txt").write_text("first\n" + line * 1000 + "last\n")
    (run,) = [r for r in RunArchive(settings.runs_dir).all() if r.id == big_run.name]
    text, cut = log_tail(run, limit=10_000)
    assert cut and text.endswith("last\n") and text.startswith("x") and len(text) <= 10_000
    assert log_tail(run) == ("first\n" + line * 1000 + "last\n", False)


def test_the_log_follower_never_waits_on_a_fifo_and_moves_past_a_huge_line(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "log.txt"
    os.mkfifo(fifo)
    assert read_from(fifo, 0) == ([], 0)
    log = tmp_path / "big.txt"
    log.write_bytes(b"y" * (TAIL_BYTES * 2 + 10) + b"\nend\n")
    lines, offset = read_from(log, 1)
    assert offset == 1 + TAIL_BYTES and lines == ["y" * TAIL_BYTES]  # a piece, not stuck
    lines, offset = read_from(log, offset)
    lines, offset = read_from(log, offset)
    assert lines == ["y" * 9, "end"] and offset == log.stat().st_size


def test_parse_record_turns_damage_into_none(tmp_path: Path) -> None:
    assert parse_record(tmp_path, b'{"id": "x"}') is not None
    for raw in (b"", b"[]", b'"x"', b"{}", b'{"id": "x", "started": 1e999}', b"1" * 5000):
        assert parse_record(tmp_path, raw) is None, raw


def test_a_run_keeps_its_launch_spec_without_its_secrets(settings: Settings) -> None:
    """What a saved fleet file needs of a server attached to later, and no secret."""
    spec = LaunchSpec(
        "/models/m", port=8123, gpus=(1,), api_key="sk-key", max_model_len=4096,
        extra_args="--seed 3 --api-key=sk-typed", extra_env={"HF_TOKEN": "hf-x", "A": "1"},
    )  # fmt: skip
    recorder = RunArchive(settings.runs_dir).new("m", ["vllm"], {}, 8123, spec=spec)
    recorder.finish(status="stopped", returncode=0, reason="r")
    text = (recorder.info.dir / "run.json").read_text()
    assert not any(secret in text for secret in ("sk-key", "sk-typed", "hf-x"))
    [run] = RunArchive(settings.runs_dir).all()
    assert run.spec is not None
    assert (run.spec.port, run.spec.gpus, run.spec.max_model_len) == (8123, (1,), 4096)
    assert run.spec.api_key is None and run.spec.extra_env == {"HF_TOKEN": "***", "A": "1"}
    assert shlex.split(run.spec.extra_args) == ["--seed", "3", "--api-key=***"]
    plain = without_secrets(LaunchSpec("/m", extra_args="--seed  '3'"))
    assert plain.extra_args == "--seed  '3'"  # nothing hidden: kept as typed
    assert without_secrets(LaunchSpec("/m", extra_args="--x 'open")).extra_args == ""
    # a record from before specs, or a damaged spec: the run is still good, without one
    for damaged in (None, "x", [1], {"model": 3}, {"model": "/m", "port": -1}):
        record(settings.runs_dir / f"20260101-000000-{len(str(damaged))}", spec=damaged)
    runs = RunArchive(settings.runs_dir).all()
    assert len(runs) == 6 and sum(r.spec is None for r in runs) == 5
