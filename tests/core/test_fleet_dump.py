"""Writing a fleet file: the same format back, only what differs from the defaults, no
secret ever; and the table of vLLM's flags that reading and writing share."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest

from vllm_console.config import Settings
from vllm_console.core.fleet import flags
from vllm_console.core.fleet.file import (
    FleetFileError,
    dump_fleet,
    load_fleet,
    parse_fleet,
    save_fleet,
)
from vllm_console.core.fleet.model import Member, Source
from vllm_console.core.serve.spec import LaunchSpec


def same(members: tuple[Member, ...] | list[Member]) -> list[Member]:
    return [replace(m, source=Source("x")) for m in members]


def test_only_what_differs_from_the_defaults_is_written(settings: Settings) -> None:
    plain = LaunchSpec(model="/m/a", port=9000, gpu_memory_utilization=0.9, gpus=(0, 1))
    plain = replace(plain, tensor_parallel_size=2)  # follows the GPUs: not written
    tuned = LaunchSpec(
        model="org/b",
        model_is_local=False,
        port=9001,
        served_model_name="chat",
        max_model_len=None,
        gpu_memory_utilization=None,
        dtype="half",
        extra_args="--enable-prefix-caching --max_num_seqs=8 --no-enable-log-requests",
    )
    text = dump_fleet(
        [Member("a", spec=plain), Member("b", spec=tuned), Member("r", url="http://h:1")],
        replace(settings, max_model_len=4096),
    )
    body = text[text.index("servers:") :]
    assert body == (
        "servers:\n"
        "  a:\n"
        "    model: /m/a\n"
        "    port: 9000\n"
        "    max-model-len: null\n"
        "    gpus: [0, 1]\n"
        "  b:\n"
        "    model: org/b\n"
        "    port: 9001\n"
        "    served-model-name: chat\n"
        "    gpu-memory-utilization: null\n"
        "    max-model-len: null\n"
        "    dtype: half\n"
        "    enable-prefix-caching: true\n"
        "    max-num-seqs: 8\n"
        "    enable-log-requests: false\n"
        "  r:\n"
        "    url: http://h:1\n"
    )


def test_no_secret_is_ever_written(settings: Settings) -> None:
    spec = LaunchSpec(
        model="/m/a",
        api_key="sk-local",
        extra_args="--hf-token hf_abc --seed 1",
        extra_env={"HF_TOKEN": "hf_def", "MY_PASSWORD": "pw", "OMP_NUM_THREADS": "4"},
    )
    text = dump_fleet(
        [Member("a", spec=spec), Member("r", url="http://h:1", api_key="sk-remote")], settings
    )
    for secret in ("sk-local", "sk-remote", "hf_abc", "hf_def", "pw\n"):
        assert secret not in text
    assert "read from VLLM_API_KEY" in text
    assert "Not saved, set them in the environment instead: a: HF_TOKEN, a: MY_PASSWORD, " in text
    assert "a: HF_TOKEN (given as --hf-token)" in text
    back = parse_fleet(text, Path("f.yaml"), settings).members[0].spec
    assert back is not None and back.extra_env == {"OMP_NUM_THREADS": "4"}
    assert back.extra_args == "--seed 1"


def test_what_a_file_cannot_hold_is_named(settings: Settings) -> None:
    members = [
        Member("a/b", url="http://h:1"),
        Member("ok", spec=LaunchSpec(model="/m", extra_args="--no-such-flag 1")),
        Member("ok2", spec=LaunchSpec(model="/m", extra_args="stray --seed")),
        Member("ok3", spec=LaunchSpec(model="/m", extra_args="--seed")),
        Member("ok4", spec=LaunchSpec(model="/m", extra_args="--seed x")),
        Member("ok5", spec=LaunchSpec(model="/m", extra_args="--enforce-eager=1")),
        Member("ok", url="http://h:2"),
    ]
    with pytest.raises(FleetFileError) as caught:
        dump_fleet(members, settings)
    assert caught.value.problems == (
        "'a/b': not a server name (letters, digits, .-_)",
        "ok: '--no-such-flag' is not a flag of vllm serve 0.32.0",
        "ok2: 'stray' is not a --flag",
        "ok3: '--seed' needs a value",
        "ok4: --seed 'x': expected a number",
        "ok5: '--enforce-eager=1': this flag takes no value",
        "ok: two servers have this name",
    )


def test_save_then_load_gives_the_fleet_back(settings: Settings, tmp_path: Path) -> None:
    text = """\
servers:
  chat:
    model: ./models/qwen
    gpus: [0, 1]
    pipeline-parallel-size: 2
    tensor-parallel-size: 1
    env: {VLLM_CPU_KVCACHE_SPACE: "1"}
    safe-mode: true
    max-model-len: 1024
    lora-modules: [a=/l/a]
    compilation-config: {level: 3}
    kv-cache-memory-bytes: 2G
  team:
    url: http://gpu-box:8000
"""
    first = parse_fleet(text, tmp_path / "in.yaml", settings).members
    path = tmp_path / "saved.yaml"
    save_fleet(path, first, settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert same(load_fleet(path, settings).members) == same(first)
    local = dump_fleet(
        [Member("rel", spec=LaunchSpec(model="models/x", model_is_local=True))], settings
    )
    assert f"model: {settings.cwd / 'models/x'}" in local  # a folder is written absolute


def test_the_flag_table_is_vllms(settings: Settings) -> None:
    table = flags.table()
    assert table.version == "0.32.0" and len(table.names()) > 250
    assert {flag.kind for flag in table.flags.values()} <= {
        "bool",
        "negatable",
        "int",
        "float",
        "str",
        "size",
        "size_or_auto",
        "json",
    }
    assert table.lookup("max_model_len") is table.lookup("max-model-len")
    alias = table.lookup("device-memory-utilization")
    assert alias is not None and alias.name == "gpu-memory-utilization"
    assert table.lookup("tensor") is None  # no abbreviations, unlike argparse
    eager = table.lookup("enforce-eager")
    assert eager is not None and eager.kind == "negatable"
    assert flags.to_args(eager, False) == ["--no-enforce-eager"]
    assert flags.from_args(["--no-enforce-eager"]) == [(eager, False)]


@pytest.mark.parametrize(
    "args",
    [
        ["--enable-prefix-caching"],
        ["--max-num-seqs", "4"],
        ["--lora-modules", "a=/x", "b=/y"],
        ["--compilation-config", '{"level": 3}'],
        ["--hf-overrides", "not-json"],
        ["--max-num-batched-tokens", "16k"],
        ["--max-model-len", "auto"],
        ["--cpu-offload-gb", "1.5"],
        ["--max-lora-rank", "64"],
        ["--seed", "-3"],
    ],
)
def test_arguments_become_keys_and_back(args: list[str]) -> None:
    (flag, value), *rest = flags.from_args(args)
    assert rest == [] and flags.to_args(flag, value) == args
