"""Every problem a fleet file can have, named with its file and line, all of them at once;
and files that are hostile (FIFOs, huge, alias bombs, control characters) refused quickly."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from vllm_console.config import Settings
from vllm_console.core.fleet.file import FILE_LIMIT, FleetFileError, load_fleet, parse_fleet
from vllm_console.core.fleet.yamlread import NODE_LIMIT

FILE = Path("fleet.yaml")


def problems(text: str | bytes, settings: Settings) -> list[str]:
    raw = textwrap.dedent(text) if isinstance(text, str) else text
    with pytest.raises(FleetFileError) as caught:
        parse_fleet(raw, FILE, settings)
    found = list(caught.value.problems)
    assert found and all(p.startswith("fleet.yaml line ") and p.isprintable() for p in found)
    return found


def test_every_problem_is_named_in_one_go_in_line_order(settings: Settings) -> None:
    found = problems(
        """\
        servers:
          chat:
            model: /m/a
            max-modle-len: 4096
            enforce-eager: "yes"
            port: 70000
          embed:
            model: /m/b
            dtype: bf16
            gpus: [0, 1]
            tensor-parallel-size: 3
          team:
            url: http://box:8000
            port: 8000
        """,
        settings,
    )
    assert found == [
        "fleet.yaml line 4: unknown key 'max-modle-len' (did you mean 'max-model-len'?)",
        "fleet.yaml line 5: enforce-eager 'yes': expected true or false",
        "fleet.yaml line 6: port 70000: out of range (1 to 65535)",
        "fleet.yaml line 9: dtype 'bf16': expected one of auto, bfloat16, float, float16, "
        "float32, half",
        "fleet.yaml line 10: gpus: tensor-parallel-size 3 x pipeline-parallel-size 1 = 3 GPUs, "
        "but 2 listed",
        "fleet.yaml line 14: port is for a server the console starts: a remote server (url) "
        "takes only url, api-key and name",
    ]


@pytest.mark.parametrize(
    ("entry", "wanted"),
    [
        ("max-num-seqs: many", "max-num-seqs 'many': expected a whole number"),
        ("max-num-seqs: 1.5", "max-num-seqs 1.5: expected a whole number"),
        ("seed: 100000000000000000000000000000", "seed 1000000000000000000000000000"),
        ("port: 99999999999999999999999999999999999999999999", "port: a number of over 40"),
        ("gpu-memory-utilization: 1.5", "gpu-memory-utilization: expected a fraction"),
        ("gpu-memory-utilization: .inf", "gpu-memory-utilization: not a finite number"),
        ("cpu-offload-gb: .nan", "cpu-offload-gb: not a finite number"),
        ("kv-cache-dtype: fp7", "kv-cache-dtype 'fp7': expected one of auto, bfloat16"),
        ("max-lora-rank: 7", "max-lora-rank 7: expected one of 1, 8, 16"),
        ("moe-backend: tritonn", "moe-backend 'tritonn': expected one of"),
        ("quantization: [awq, fp8]", "quantization ['awq', 'fp8']: takes one value"),
        ("enable-prefix-caching: 1", "enable-prefix-caching 1: expected true or false"),
        ("max-model-len: 0", "max-model-len 0: out of range (1 to 100000000)"),
        ("max-model-len: 1.5K", "max-model-len '1.5K': expected a whole number (or like 32k)"),
        ("tensor-parallel-size: 0", "tensor-parallel-size 0: out of range (1 to 4096)"),
        ("served-model-name: [a, b]", "served-model-name: one name"),
        ("served-model-name: ''", "served-model-name: expected text on one line"),
        ("host: 'a b'", "host: expected text on one line"),
        ("hf-token: hf_secret", "hf-token: set HF_TOKEN in env"),
        ('chat-template: "a\\0b"', "chat-template: a value cannot hold a NUL"),
        ("gpus: []", "gpus: expected GPU indices like [0, 1]"),
        ("gpus: [0, 0]", "gpus: each index once"),
        ("gpus: [-1]", "gpus: each index once, from 0 to 1023"),
        ("gpus: '0;1'", "gpus: expected GPU indices"),
        ("gpus: [true]", "gpus: expected GPU indices"),
        ("env: [A]", "env: expected NAME: value lines"),
        ("env: {'A B': x}", "env: 'A B' is not a variable name"),
        ("env: {A: true}", "env: A: expected text (quote it: '1')"),
        ("env: {A: null}", "env: A: expected text"),
        ("safe-mode: 1", "safe-mode: expected true or false"),
        ("name: x", "the name is the key above this entry"),
        ("{a: 1}: 2", "a key must be a single word"),
        ("when: 2001-12-14", "unknown key 'when'"),
    ],
)
def test_a_bad_key_or_value_is_named_with_its_line(
    settings: Settings, entry: str, wanted: str
) -> None:
    found = problems(f"servers:\n  a:\n    model: /m\n    {entry}\n", settings)
    assert any(p.startswith("fleet.yaml line 4: ") and wanted in p for p in found), found


def test_a_key_given_twice_in_either_spelling(settings: Settings) -> None:
    found = problems(
        "servers:\n  a:\n    model: /m\n    max_model_len: 1\n    max-model-len: 2\n", settings
    )
    assert found == ["fleet.yaml line 5: max-model-len is given twice"]


def test_an_api_key_is_never_quoted(settings: Settings) -> None:
    found = problems("servers:\n  a: {model: /m, api-key: [sk-1, sk-2]}\n", settings)
    assert found == ["fleet.yaml line 2: api-key: expected one key, as text on one line"]
    found = problems("servers:\n  a: {url: 'http://h', api-key: ' sk-3'}\n", settings)
    assert "sk-3" not in found[0]


def test_names_must_be_unique_and_plain(settings: Settings) -> None:
    found = problems(
        """\
        servers:
          - {name: chat, model: /m/a}
          - {name: chat, model: /m/b}
          - {name: "a/b", model: /m/c}
        servers2: {}
        """,
        settings,
    )
    assert found == [
        "fleet.yaml line 3: the name 'chat' is taken (line 2)",
        "fleet.yaml line 4: the name 'a/b' may hold only letters, digits, '.', '_', '-'",
        "fleet.yaml line 5: unknown key 'servers2' (did you mean 'servers'?)",
    ]
    # The mapping form: YAML lets a key repeat, the file does not.
    found = problems("servers:\n  a: {model: /m}\n  a: {model: /n}\n", settings)
    assert found == ["fleet.yaml line 3: the name 'a' is taken (line 2)"]


def test_two_servers_on_one_port_of_one_host(settings: Settings) -> None:
    found = problems(
        """\
        servers:
          a: {model: /m/a, port: 8000}
          b: {model: /m/b, port: 8000, host: 0.0.0.0}
          c: {model: /m/c, port: 8001, host: 10.0.0.1}
          d: {model: /m/d, port: 8001, host: 10.0.0.2}
          e: {model: /m/e}
        """,
        settings,
    )
    assert found == ["fleet.yaml line 3: port 8000 on '0.0.0.0' is taken by 'a' (line 2)"]


def test_servers_sharing_a_gpu_must_fit_in_it_together(settings: Settings) -> None:
    found = problems(
        """\
        servers:
          a: {model: /m/a, gpus: [0, 1], gpu-memory-utilization: 0.6}
          b: {model: /m/b, gpus: [1], gpu-memory-utilization: 0.5}
          c: {model: /m/c, gpus: [2], gpu-memory-utilization: 0.5}
          d: {model: /m/d, gpus: [2], gpu-memory-utilization: 0.5}
          e: {model: /m/e}
          f: {model: /m/f}
        """,
        settings,
    )
    assert found == [
        "fleet.yaml line 3: GPU 1 is shared by 'a' (line 2: 0.6), 'b' (line 3: 0.5): vLLM "
        "takes that share of the whole GPU each, 1.1 in all; lower gpu-memory-utilization "
        "so they add up to 1 at most"
    ]
    # The settings' share counts where the entry gives none (0.9 + 0.9 on GPU 0).
    found = problems("servers:\n  a: {model: /m, gpus: 0}\n  b: {model: /n, gpus: 0}\n", settings)
    assert found[0].startswith("fleet.yaml line 3: GPU 0 is shared by 'a' (line 2: 0.9)")


def test_a_remote_server_takes_only_url_api_key_and_name(settings: Settings) -> None:
    found = problems(
        "servers:\n  - {name: r, url: 'ftp://x', gpus: [0]}\n  - {url: 'http://'}\n", settings
    )
    assert found == [
        "fleet.yaml line 2: gpus is for a server the console starts: a remote server (url) "
        "takes only url, api-key and name",
        "fleet.yaml line 2: url: expected http://HOST:PORT, not 'ftp://x'",
        "fleet.yaml line 3: url: expected http://HOST:PORT, not 'http://'",
    ]


def test_control_characters_are_refused_and_shown_visible(settings: Settings) -> None:
    found = problems('servers:\n  a: {model: "\\e]0;pwned\\a", "\\e[2J": 1}\n', settings)
    assert found == [
        "fleet.yaml line 2: unknown key '\\x1b[2J'",
        "fleet.yaml line 2: model: expected text on one line, not '\\x1b]0;pwned\\x07'",
    ]
    found = problems("servers:\n  a: {model: m}\n  b: \x1b[31m\n", settings)
    assert found == ["fleet.yaml line 3: not YAML: character '\\x1b' is not allowed in YAML"]
    found = problems(b"servers:\n  a: {model: \xff}\n", settings)
    assert found == ["fleet.yaml line 2: not UTF-8 text"]


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "servers: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
            "fleet.yaml line 2: not YAML: aliases (*name) are not allowed",
        ),
        ("servers: &s {a: {model: m, x: *s}}\n", "line 1: not YAML: aliases"),
        ("servers: " + "[" * 100_000, "line 1: not YAML"),
        ("servers: [" + "{}, " * (NODE_LIMIT + 1) + "]\n", f"more than {NODE_LIMIT:,} values"),
        ("servers:\n  a: {model: m, seed: " + "9" * 100_000 + "}\n", "a number of over 40"),
        ("servers:\n  a: {model: m, seed: 0x" + "f" * 30 + "}\n", "seed 13292279957849158729"),
    ],
)
def test_hostile_yaml_is_refused_quickly(settings: Settings, text: str, wanted: str) -> None:
    began = time.perf_counter()
    found = problems(text, settings)
    assert time.perf_counter() - began < 2.0
    assert any(wanted in p for p in found), found


def test_load_reads_only_a_small_regular_file(settings: Settings, tmp_path: Path) -> None:
    good = tmp_path / "fleet.yaml"
    good.write_text("servers:\n  a: {model: ./m}\n")
    fleet = load_fleet(good, settings)
    assert fleet.path == good and fleet.members[0].spec is not None
    assert fleet.members[0].spec.model == str(tmp_path / "m")
    cases = {"missing.yaml": "No such file", "folder": "not a regular file"}
    cases |= {"fifo.yaml": "not a regular file", "big.yaml": "over 256 KiB"}
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo.yaml")  # nobody writes: an open that waited would hang
    (tmp_path / "big.yaml").write_text("#" * (FILE_LIMIT + 1))
    for name, wanted in cases.items():
        with pytest.raises(FleetFileError) as caught:
            load_fleet(tmp_path / name, settings)
        (problem,) = caught.value.problems
        assert problem.startswith(f"{tmp_path / name}: ") and wanted in problem


def test_a_crowd_is_refused_and_a_clash_named_once(settings: Settings) -> None:
    crowd = "servers:\n" + "  - {model: /m}\n" * 257
    assert problems(crowd, settings) == ["fleet.yaml line 2: more than 256 servers"]
    began = time.perf_counter()
    found = problems("servers:\n" + "  - {model: /m, port: 9000, gpus: 0}\n" * 256, settings)
    assert time.perf_counter() - began < 2.0
    ports = [p for p in found if "port 9000" in p]
    assert len(ports) == 255 and ports[-1].endswith("is taken by 'm' (line 2)")
    (gpu,) = [p for p in found if "GPU 0" in p]
    assert "'m-4' (line 5: 0.9) and 252 more: vLLM takes" in gpu


def test_secrets_stay_out_of_messages(settings: Settings) -> None:
    found = problems("servers:\n  a: {model: /m, hf-token: [hf_abc]}\n", settings)
    assert found == ["fleet.yaml line 2: hf-token: takes one value, not a list (expected text)"]
    found = problems("servers:\n  a: {url: 'http://h:1 x'}\n", settings)
    assert found == ["fleet.yaml line 2: url: expected http://HOST:PORT, not 'http://h:1 x'"]
