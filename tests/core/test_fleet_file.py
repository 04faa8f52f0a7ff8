"""The fleet file: both forms, vLLM's keys into a launch, the defaults, and every problem
named with its file and line (all of them at once)."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from vllm_console.config import Settings
from vllm_console.core.fleet.file import FleetFile, FleetFileError, parse_fleet
from vllm_console.core.fleet.model import Member
from vllm_console.core.serve.spec import LaunchSpec, launch_env, serve_args

FILE = Path("fleet.yaml")


def parse(text: str, settings: Settings, path: Path = FILE) -> FleetFile:
    return parse_fleet(textwrap.dedent(text), path, settings)


def problems(text: str | bytes, settings: Settings, path: Path = FILE) -> tuple[str, ...]:
    raw = textwrap.dedent(text) if isinstance(text, str) else text
    with pytest.raises(FleetFileError) as caught:
        parse_fleet(raw, path, settings)
    assert caught.value.problems
    return caught.value.problems


def spec_of(member: Member) -> LaunchSpec:
    assert member.spec is not None
    return member.spec


MAPPING_FORM = """\
servers:
  chat:
    model: /models/qwen
    max-model-len: 8192
  embed:
    model: BAAI/bge-m3
    port: 8100
  team:
    url: http://gpu-box:8000
"""
LIST_FORM = """\
servers:
  - name: chat
    model: /models/qwen
    max_model_len: 8192
  - name: embed
    model: BAAI/bge-m3
    port: 8100
  - name: team
    url: http://gpu-box:8000
"""


def test_both_forms_give_the_same_fleet(settings: Settings) -> None:
    by_name, listed = parse(MAPPING_FORM, settings), parse(LIST_FORM, settings)
    assert [m.name for m in by_name.members] == ["chat", "embed", "team"]
    assert [replace(m, source=by_name.members[0].source) for m in listed.members] == [
        replace(m, source=by_name.members[0].source) for m in by_name.members
    ]
    chat, embed, team = by_name.members
    assert spec_of(chat).model == "/models/qwen" and spec_of(chat).max_model_len == 8192
    assert spec_of(embed).model == "BAAI/bge-m3" and not spec_of(embed).model_is_local
    assert team.url == "http://gpu-box:8000" and not team.local
    assert str(chat.source) == "fleet.yaml line 3" and str(team.source) == "fleet.yaml line 9"


def test_defaults_come_from_the_settings_and_ports_count_up(settings: Settings) -> None:
    settings = replace(settings, port=9000, host="0.0.0.0", gpu_memory_utilization=0.8)
    settings = replace(settings, max_model_len=4096, api_key="sk-env")
    fleet = parse(
        """
        servers:
          a: {model: /m/a}
          b: {model: /m/b, port: 9001}
          c: {model: /m/c}
          d: {model: /m/d}
        """,
        settings,
    )
    specs = [spec_of(m) for m in fleet.members]
    assert [s.port for s in specs] == [9000, 9001, 9002, 9003]  # 9001 is b's
    assert {(s.host, s.gpu_memory_utilization, s.max_model_len, s.api_key) for s in specs} == {
        ("0.0.0.0", 0.8, 4096, "sk-env")
    }
    assert {s.tensor_parallel_size for s in specs} == {1} and {s.gpus for s in specs} == {None}


def test_model_paths_are_relative_to_the_file_and_hub_ids_kept(settings: Settings) -> None:
    fleet = parse(
        """
        servers:
          - {model: ./models/a}
          - {model: ../b}
          - {model: ~/c}
          - {model: /abs/d/}
          - {model: Qwen/Qwen3-8B}
          - {model: models/e}
        """,
        settings,
        Path("fleets/prod.yaml"),
    )
    got = [(spec_of(m).model, spec_of(m).model_is_local) for m in fleet.members]
    assert got == [
        (str(settings.cwd / "fleets/models/a"), True),
        (str(settings.cwd / "b"), True),
        (str(settings.home / "c"), True),
        ("/abs/d", True),
        ("Qwen/Qwen3-8B", False),
        ("models/e", False),  # not written as a path: `up` resolves it as `serve` does
    ]
    assert [m.name for m in fleet.members] == ["a", "b", "c", "d", "Qwen3-8B", "e"]


def test_a_list_entry_without_name_is_named_after_its_served_model(settings: Settings) -> None:
    fleet = parse(
        """
        servers:
          - {model: /m/x, served-model-name: chat}
          - {model: /m/y, served-model-name: chat}
          - {name: chat-3, model: /m/z}
          - {url: "http://box:8000/v1/"}
        """,
        settings,
    )
    assert [m.name for m in fleet.members] == ["chat", "chat-2", "chat-3", "box-8000"]
    assert fleet.members[3].url == "http://box:8000"  # /v1 is the API's, not the server's


def test_vllm_keys_become_the_arguments_vllm_config_would_give(settings: Settings) -> None:
    fleet = parse(
        """
        servers:
          chat:
            model: /models/qwen
            dtype: bfloat16
            enforce-eager: true
            trust_remote_code: true
            quantization: awq
            kv-cache-dtype: fp8
            served-model-name: [chat]
            device-memory-utilization: 0.7
            enable-prefix-caching: true
            enable-log-requests: false
            disable-log-stats: false
            headless: true
            lora-modules: [a=/l/a, b=/l/b]
            compilation-config: {level: 3, cudagraph_capture_sizes: [1, 2]}
            max-num-seqs: 64
            cpu-offload-gb: 4.5
            max-num-batched-tokens: 16k
            moe-backend: Triton
        """,
        settings,
    )
    spec = spec_of(fleet.members[0])
    assert (spec.dtype, spec.enforce_eager, spec.trust_remote_code) == ("bfloat16", True, True)
    assert (spec.quantization, spec.kv_cache_dtype, spec.served_model_name) == (
        "awq",
        "fp8",
        "chat",
    )
    assert spec.gpu_memory_utilization == 0.7  # by its alias
    argv = serve_args(spec)
    tail = argv[argv.index("--trust-remote-code") + 1 :]
    assert tail == [
        "--enable-prefix-caching",
        "--no-enable-log-requests",  # vLLM's config loader: false -> --no-FLAG where it has one
        "--headless",  # disable-log-stats: false has no --no- form: left out, as vLLM does
        "--lora-modules",
        "a=/l/a",
        "b=/l/b",
        "--compilation-config",
        '{"level": 3, "cudagraph_capture_sizes": [1, 2]}',
        "--max-num-seqs",
        "64",
        "--cpu-offload-gb",
        "4.5",
        "--max-num-batched-tokens",
        "16k",
        "--moe-backend",
        "Triton",
    ]


def test_max_model_len_sizes_and_auto(settings: Settings) -> None:
    fleet = parse(
        """
        servers:
          a: {model: /m/a, max-model-len: 32k}
          b: {model: /m/b, max-model-len: 2K}
          c: {model: /m/c, max-model-len: auto}
          d: {model: /m/d, max-model-len: null}
        """,
        replace(settings, max_model_len=4096),
    )
    a, b, c, d = (spec_of(m) for m in fleet.members)
    assert (a.max_model_len, b.max_model_len, d.max_model_len) == (32000, 2048, None)
    assert c.max_model_len is None and serve_args(c)[-2:] == ["--max-model-len", "auto"]


def test_gpus_set_cuda_visible_devices_and_tensor_parallel_size(settings: Settings) -> None:
    fleet = parse(
        """
        servers:
          a: {model: /m/a, gpus: [0, 1, 2, 3]}
          b: {model: /m/b, gpus: "4,5", pipeline-parallel-size: 2}
          c: {model: /m/c, gpus: 6, env: {VLLM_CPU_KVCACHE_SPACE: 1}}
          d: {model: /m/d, gpus: [7], tensor-parallel-size: 1}
        """,
        replace(settings, gpu_memory_utilization=0.45),
    )
    a, b, c, d = (spec_of(m) for m in fleet.members)
    assert (a.gpus, a.tensor_parallel_size) == ((0, 1, 2, 3), 4)
    assert (b.gpus, b.tensor_parallel_size, b.pipeline_parallel_size) == ((4, 5), 1, 2)
    assert c.gpus == (6,) and c.extra_env == {"VLLM_CPU_KVCACHE_SPACE": "1"}
    env = launch_env(c, hf_endpoint=None)
    assert env["CUDA_VISIBLE_DEVICES"] == "6" and env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert d.tensor_parallel_size == 1


def test_safe_mode_first_then_the_entry_own_keys(settings: Settings) -> None:
    fleet = parse(
        """
        servers:
          a: {model: /m/a, safe-mode: true}
          b: {model: /m/b, safe-mode: true, max-model-len: 2048, enforce-eager: false}
        """,
        settings,
    )
    a, b = (spec_of(m) for m in fleet.members)
    assert a == LaunchSpec(model="/m/a", port=8000).with_safe_mode()
    assert (b.safe_mode, b.max_model_len, b.enforce_eager, b.gpu_memory_utilization) == (
        True,
        2048,
        False,
        0.4,
    )


def test_a_remote_key_is_its_own_or_the_settings(settings: Settings) -> None:
    fleet = parse(
        """
        servers:
          a: {url: "https://a.example/", api-key: sk-a}
          b: {url: "http://b:8000"}
        """,
        replace(settings, api_key="sk-env"),
    )
    assert [(m.url, m.api_key) for m in fleet.members] == [
        ("https://a.example", "sk-a"),
        ("http://b:8000", "sk-env"),
    ]


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("", "fleet.yaml line 1: empty"),
        ("# only a comment\n", "fleet.yaml line 1: empty"),
        ("servers:\n", "fleet.yaml line 1: no servers under `servers:`"),
        ("servers: []\n", "fleet.yaml line 1: no servers"),
        ("- model: m\n", "fleet.yaml line 1: expected `servers:`"),
        ("server:\n  a: {model: m}\n", "line 1: unknown key 'server' (did you mean 'servers'?)"),
        ("servers: 3\n", "line 1: `servers:` holds a mapping of names or a list"),
        ("servers:\n  a: {model: [m\n", "fleet.yaml line 3: not YAML"),
        ("servers:\n  a:\n    model: m\n   port: 1\n", "fleet.yaml line 4: not YAML"),
        ("servers: {}\n---\nservers: {}\n", "line 2: not YAML: more than one document"),
        ("servers:\n  a: &x {model: m}\n  b: *x\n", "line 3: not YAML: aliases"),
        ("servers:\n  a:\n", "line 2: a server's settings are its keys"),
        ("servers:\n  - 3\n", "line 2: a server's settings are its keys"),
        ("servers:\n  a: !!python/object:os.system {}\n", "line 2: a server's settings"),
        ("servers:\n  a: {port: 8000}\n", "line 2: no model (or url"),
        ("servers:\n  a: {model: null}\n", "line 2: model: expected a model folder"),
    ],
)
def test_a_file_that_is_no_fleet_says_where(settings: Settings, text: str, wanted: str) -> None:
    found = problems(text, settings)
    assert any(wanted in p for p in found), found
