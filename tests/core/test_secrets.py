"""The API key: never on a command line, read from the environment by scripts, and redacted
wherever the server's log or a launch is shown or kept."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from vllm_console.core.serve.redact import redact_argv, redact_text, split_api_key
from vllm_console.core.serve.spec import (
    LaunchSpec,
    SpecError,
    api_key_of,
    launch_env,
    load_saved_specs,
    render_shell,
    save_spec,
    serve_args,
    take_api_key,
)

KEY = "sk-top-secret-42"


def test_the_key_goes_in_the_environment_never_on_the_command_line() -> None:
    spec = LaunchSpec(model="/m", api_key=KEY)
    args = serve_args(spec)
    assert KEY not in " ".join(args) and "--api-key" not in args
    assert launch_env(spec, hf_endpoint=None)["VLLM_API_KEY"] == KEY
    assert "VLLM_API_KEY" not in launch_env(LaunchSpec(model="/m"), hf_endpoint=None)


@pytest.mark.parametrize(
    "extra",
    [
        f"--api-key {KEY} --seed 3",
        f"--api-key={KEY} --seed 3",
        f"--seed 3 --api_key {KEY}",
        f"--api-k {KEY} --seed 3",  # argparse takes an unambiguous prefix
        f"--api-key {KEY} {KEY} --seed 3",  # vLLM's list form, one key
    ],
)
def test_a_key_typed_into_extra_args_is_moved_to_the_environment(extra: str) -> None:
    spec = LaunchSpec(model="/m", api_key="from-settings", extra_args=extra)
    args = serve_args(spec)
    assert KEY not in " ".join(args) and args[-2:] == ["--seed", "3"]
    assert not any(a.startswith("--api") for a in args)
    # the command line's key wins, as vLLM's --api-key wins over VLLM_API_KEY
    assert api_key_of(spec) == KEY
    assert launch_env(spec, hf_endpoint=None)["VLLM_API_KEY"] == KEY
    moved = take_api_key(spec)
    assert moved.api_key == KEY and KEY not in moved.extra_args
    assert "--seed 3" in moved.extra_args


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("--api-key a --api-key b", "one API key only"),
        ("--api-key a b", "one API key only"),
        ("--api-key", "needs a value"),
        ("--api-key --seed 3", "needs a value"),
        ("--api-key=", "needs a value"),
    ],
)
def test_keys_that_cannot_be_moved_are_refused(extra: str, message: str) -> None:
    spec = LaunchSpec(model="/m", extra_args=extra)
    for build in (serve_args, take_api_key, api_key_of):
        with pytest.raises(SpecError, match=message):
            build(spec)


def test_flags_that_only_look_like_the_key_are_left_alone() -> None:
    args = ["--api-server-count", "2", "--api-keys", "x", "--api-", "y"]
    assert split_api_key(args) == (args, None)


def test_redact_argv_hides_every_spelling() -> None:
    argv = ["vllm", "--api-key", "a", "b", "--api_key=c", "--api-k", "d", "--port", "1"]
    assert redact_argv(argv) == [
        "vllm",
        "--api-key",
        "***",
        "***",
        "--api_key=***",
        "--api-k",
        "***",
        "--port",
        "1",
    ]


def test_redact_text_hides_the_longest_first_and_short_keys_too() -> None:
    assert redact_text(f"a {KEY} b sk-top", [KEY, "sk-top"]) == "a *** b ***"
    # a one-character key is still hidden (at the price of every other "x")
    assert redact_text("x-ray", ["x"]) == "***-ray"
    assert redact_text("nothing", ["", "zzz"]) == "nothing"


def test_the_script_reads_the_key_from_the_environment(tmp_path: Path) -> None:
    spec = LaunchSpec(model="/m", api_key=KEY)
    env = launch_env(spec, hf_endpoint=None)
    script = render_shell(["sh", "-c", 'printf "%s" "$VLLM_API_KEY"'], env)
    assert KEY not in script and "VLLM_API_KEY=***" in script
    path = tmp_path / "serve.sh"
    path.write_text(script)
    bare = {k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"}
    missing = subprocess.run(["bash", path], env=bare, capture_output=True, text=True)
    assert missing.returncode != 0 and "set VLLM_API_KEY" in missing.stderr
    given = subprocess.run(
        ["bash", path], env={**bare, "VLLM_API_KEY": "k2"}, capture_output=True, text=True
    )
    assert given.returncode == 0 and given.stdout == "k2"


def test_saved_specs_are_private_and_hold_no_key(tmp_path: Path) -> None:
    folder = tmp_path / "config" / "vllm-console"
    folder.mkdir(parents=True, mode=0o755)
    os.chmod(folder, 0o755)  # made by an older console
    path = folder / "launch-specs.json"
    old = os.umask(0o022)
    try:
        save_spec(path, "m", LaunchSpec(model="/m", api_key="a", extra_args=f"--api-key {KEY}"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KEY not in path.read_text() and '"a"' not in path.read_text()
    assert load_saved_specs(path)["m"].api_key is None
    assert [p.name for p in folder.iterdir()] == ["launch-specs.json"]  # no temporary left


def test_hostile_saved_specs_files_mean_no_saved_specs(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert load_saved_specs(fifo) == {}  # at once: never waits for a writer
    huge = tmp_path / "huge.json"
    with huge.open("wb") as handle:
        handle.truncate(64 << 20)
    assert load_saved_specs(huge) == {}
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert load_saved_specs(deep) == {}
    assert load_saved_specs(Path("/dev/zero")) == {}
    assert load_saved_specs(tmp_path) == {}  # a folder


def test_saved_entries_of_the_wrong_type_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "specs.json"
    good = LaunchSpec(model="/m").to_json()
    path.write_text(
        json.dumps(
            {
                "good": good,
                "port": {**good, "port": "8000"},
                "huge": {**good, "max_model_len": 10**400},
                "nan": {**good, "gpu_memory_utilization": float("nan")},
                "env": {**good, "extra_env": ["A=b"]},
                "flag": {**good, "enforce_eager": "yes"},
                "nul": {**good, "model": "/m\x00"},
                "nomodel": {"port": 1},
            }
        )
    )
    assert list(load_saved_specs(path)) == ["good"]
