"""Settings layering and validation, on real .env files in temp dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fuzz.strategies_config import check_env_text, generated_env_texts, mutated_env_texts

from vllm_console.config import (
    KEYS,
    ConfigError,
    EnvFileError,
    env_example,
    load_settings,
    parse_env_file,
)

ROOT = Path(__file__).resolve().parents[2]


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(environ={}, cwd=tmp_path, home=tmp_path / "home")
    assert s.base_url == "http://localhost:8000/v1"
    assert s.model is None and s.api_key is None and s.hf_endpoint is None
    assert s.host == "127.0.0.1" and s.port == 8000
    assert s.gpu_memory_utilization == 0.9 and s.max_model_len is None
    assert s.hf_hub_cache == tmp_path / "home" / ".cache" / "huggingface" / "hub"
    assert s.origin("VLLM_CONSOLE_PORT") == "default"


def test_layers_in_order(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "VLLM_MODEL=from-env-file\nVLLM_CONSOLE_PORT=8001\nexport VLLM_API_KEY='k e y'\n"
        "HF_ENDPOINT=https://mirror.example # a comment\n"
    )
    environ = {"VLLM_CONSOLE_PORT": "8002", "VLLM_MODEL": "from-environ"}
    cli = {"VLLM_CONSOLE_PORT": "8003", "VLLM_MODEL": None}
    s = load_settings(environ=environ, cli=cli, cwd=tmp_path, home=tmp_path)
    assert s.port == 8003 and s.origin("VLLM_CONSOLE_PORT") == "command line"
    assert s.model == "from-environ" and s.origin("VLLM_MODEL") == "environment"
    assert s.api_key == "k e y" and s.origin("VLLM_API_KEY") == f"{tmp_path / '.env'} line 3"
    assert s.hf_endpoint == "https://mirror.example"


def test_explicit_env_file_replaces_cwd_one(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("VLLM_MODEL=cwd\n")
    other = tmp_path / "other.env"
    other.write_text("VLLM_MODEL=other\n")
    s = load_settings(environ={}, env_file=other, cwd=tmp_path, home=tmp_path)
    assert s.model == "other"


def test_missing_explicit_env_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, env_file=tmp_path / "nope.env", cwd=tmp_path, home=tmp_path)
    assert info.value.key == "--env-file"


def test_hf_cache_location(tmp_path: Path) -> None:
    s = load_settings(environ={"HF_HOME": str(tmp_path / "hf")}, cwd=tmp_path, home=tmp_path)
    assert s.hf_hub_cache == tmp_path / "hf" / "hub"
    s = load_settings(
        environ={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "c")},
        cwd=tmp_path,
        home=tmp_path,
    )
    assert s.hf_hub_cache == tmp_path / "c"


def test_model_dirs(tmp_path: Path) -> None:
    environ = {"VLLM_CONSOLE_MODEL_DIRS": f"{tmp_path}/a:~/b::"}
    s = load_settings(environ=environ, cwd=tmp_path / "cwd", home=tmp_path / "home")
    assert s.model_dirs == (
        tmp_path / "cwd" / "models",
        tmp_path / "home" / "models",
        tmp_path / "home" / "autodl-tmp" / "models",
        Path("/root/models"),
        Path("/root/autodl-tmp/models"),
        tmp_path / "a",
        Path("~/b").expanduser(),
    )


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("VLLM_CONSOLE_PORT", "abc", "port number"),
        ("VLLM_CONSOLE_PORT", "70000", "port number"),
        ("VLLM_CONSOLE_GPU_MEMORY_UTILIZATION", "1.7", "between 0 and 1"),
        ("VLLM_CONSOLE_GPU_MEMORY_UTILIZATION", "lots", "between 0 and 1"),
        ("VLLM_CONSOLE_MAX_MODEL_LEN", "-5", "whole number"),
        ("VLLM_BASE_URL", "localhost:8000", "http"),
        ("VLLM_CONSOLE_MAX_MODEL_LEN", "100000001", "at most 100,000,000"),
        ("VLLM_CONSOLE_MAX_MODEL_LEN", "9" * 400, "at most 100,000,000"),
        ("VLLM_CONSOLE_HOST", "'local host'", "without spaces"),
        ("VLLM_CONSOLE_HOST", '"127.0.0.1\\nevil"', "without spaces"),
    ],
)
def test_bad_values_name_key_value_origin(
    tmp_path: Path, key: str, value: str, needle: str
) -> None:
    (tmp_path / ".env").write_text(f"# settings\n{key}={value}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, cwd=tmp_path, home=tmp_path)
    err = info.value
    unquoted = value.strip("'\"").replace("\\n", "\n")
    assert (err.key, err.value, err.origin) == (key, unquoted, f"{tmp_path / '.env'} line 2")
    assert needle in err.reason


@pytest.mark.parametrize("line", ["=value", "A B=c", "KEY='open", 'KEY="a" junk'])
def test_unparsable_env_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / ".env"
    path.write_text(f"# fine\nVLLM_MODEL=x\n{line}\n")
    with pytest.raises(EnvFileError) as info:
        parse_env_file(path)
    assert info.value.line_no == 3


def test_env_example_documents_every_key() -> None:
    text = (ROOT / ".env.example").read_text()
    assert text == env_example() + "\n" or text == env_example()
    for key in KEYS:
        assert f"# {key.name}={key.default}" in text


def test_readme_documents_every_key() -> None:
    readme = (ROOT / "README.md").read_text()
    for key in KEYS:
        assert f"| `{key.name}` |" in readme, key.name


def test_dotenv_forms(tmp_path: Path) -> None:
    """What python-dotenv documents: BOM, CRLF, export, quotes, comments, multi-line values,
    ${VAR} expansion; a key without '=' sets nothing."""
    (tmp_path / ".env").write_bytes(
        b"\xef\xbb\xbfVLLM_CONSOLE_PORT=8123\r\n"
        b"export VLLM_MODEL='my model' # the served name\r\n"
        b'VLLM_API_KEY="line one\nline two"\n'
        b"HF_HOME=${VLLM_CONSOLE_PORT}/hf\n"
        b"VLLM_CONSOLE_HOST\n"
    )
    s = load_settings(environ={}, cwd=tmp_path, home=tmp_path)
    assert s.port == 8123 and s.origin("VLLM_CONSOLE_PORT") == f"{tmp_path / '.env'} line 1"
    assert s.model == "my model"
    assert s.api_key == "line one\nline two"
    assert s.hf_home == Path("8123/hf")
    assert s.host == "127.0.0.1" and s.origin("VLLM_CONSOLE_HOST") == "default"


def test_dotenv_values_agree_with_the_library(tmp_path: Path) -> None:
    """The values are python-dotenv's own, whatever the file holds."""
    from dotenv import dotenv_values

    path = tmp_path / "x.env"
    path.write_text('A=1\nexport B=\'two words\'\nC="q\\"x"\nD=${A}${B}\nE\n')
    expected = {k: v for k, v in dotenv_values(path).items() if v is not None}
    assert dict(parse_env_file(path).values) == expected


def test_a_fifo_env_file_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / ".env"
    os.mkfifo(fifo)
    with pytest.raises(EnvFileError) as info:
        load_settings(environ={}, cwd=tmp_path, home=tmp_path)
    assert "not a regular file" in info.value.reason


def test_a_huge_env_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"#" * (2 << 20))
    with pytest.raises(EnvFileError) as info:
        load_settings(environ={}, cwd=tmp_path, home=tmp_path)
    assert "KiB" in info.value.reason


@settings(max_examples=150, deadline=None)
@given(st.one_of(generated_env_texts, mutated_env_texts))
def test_any_env_text_is_a_value_or_a_named_error(text: str) -> None:
    """Generated and mutated files: settings or a named error, within a second."""
    check_env_text(text)


@pytest.mark.parametrize("key", ["HF_HOME", "VLLM_CONSOLE_MODEL_DIRS"])
def test_a_tilde_of_no_such_user_is_a_named_error(key: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such user"):
        load_settings(environ={key: "~no-such-user-0/x"}, cwd=tmp_path, home=tmp_path)
