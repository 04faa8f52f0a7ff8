"""`vllm-console chat`: cmd_chat against the OpenAI stand-in; once in a real subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fake_openai import FakeOpenAI, word
from vllm_console.commands.chat import cmd_chat
from vllm_console.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["first", "second"], tokens=5) as server:
        yield server


def settings_for(tmp_path: Path, base_url: str, **env: str) -> Settings:
    return load_settings(environ={"VLLM_BASE_URL": base_url, **env}, cwd=tmp_path, home=tmp_path)


def run(settings: Settings, prompt: str = "hi", **kw: Any) -> int:
    options: dict[str, Any] = dict(
        model=None, system=None, as_json=False, max_tokens=None, temperature=None
    )
    return cmd_chat(settings, prompt, **{**options, **kw})


def answer(n: int) -> str:
    return "".join(word(i) for i in range(n))


def test_streams_the_answer_to_stdout_and_stats_to_stderr(
    tmp_path: Path, fake: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings_for(tmp_path, fake.base_url), "Say hi", system="Be brief") == 0
    out, err = capsys.readouterr()
    assert out == answer(5) + "\n"
    lines = err.splitlines()
    assert lines[0] == (
        "vllm-console: using 'first', the first served model (choose with --model or VLLM_MODEL)"
    )
    assert re.fullmatch(
        r"model first · ttft \d+\.\d{3} s · 5 tokens · [\d.]+ tokens/s · finish stop", lines[1]
    )
    sent = fake.requests[-1]
    assert sent["model"] == "first" and sent["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Say hi"},
    ]
    assert "temperature" not in sent and "max_tokens" not in sent


def test_model_flag_wins_and_sampling_options_are_sent(
    tmp_path: Path, fake: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path, fake.base_url, VLLM_MODEL="first")
    assert run(settings, model="second", max_tokens=3, temperature=0.0) == 0
    out, err = capsys.readouterr()
    assert out == answer(3) + "\n" and "finish length" in err and "using" not in err
    sent = fake.requests[-1]
    assert (sent["model"], sent["max_tokens"], sent["temperature"]) == ("second", 3, 0.0)


def test_a_vllm_model_that_is_not_served_is_named_with_the_served_ones(
    tmp_path: Path, fake: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path, fake.base_url, VLLM_MODEL="Org/Missing")
    assert run(settings) == 2
    out, err = capsys.readouterr()
    assert out == "" and fake.requests == []
    assert err == (
        f"vllm-console: model 'Org/Missing' (VLLM_MODEL, from environment) is not served at "
        f"{fake.base_url}; served: first, second\n"
    )
    assert run(settings, model="nope") == 2
    assert "'nope' (--model) is not served" in capsys.readouterr().err


def test_json_prints_one_object_at_the_end(
    tmp_path: Path, fake: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings_for(tmp_path, fake.base_url, VLLM_MODEL="second"), as_json=True) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert out.count("\n") == 1 and err == ""
    assert result["text"] == answer(5) and result["model"] == "second"
    assert result["tokens"] == 5 and result["finish_reason"] == "stop"
    assert result["usage"] == {"prompt_tokens": 7, "completion_tokens": 5}
    assert result["ttft_s"] > 0 and result["tokens_per_s"] > 0 and result["error"] is None


def test_a_dropped_stream_keeps_the_partial_answer_and_fails(
    tmp_path: Path, fake: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.mode = "drop"
    assert run(settings_for(tmp_path, fake.base_url)) == 1
    out, err = capsys.readouterr()
    assert out == answer(3) + "\n"
    assert err.splitlines()[-1] == (
        "vllm-console: the server closed the connection mid-answer (the partial answer is kept)"
    )


def test_an_error_mid_stream_in_json(
    tmp_path: Path, fake: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.mode = "error_mid"
    assert run(settings_for(tmp_path, fake.base_url), as_json=True) == 1
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["text"] == answer(3) and result["finish_reason"] is None
    assert result["error"] == "server error: EngineCore died (InternalServerError)"
    assert err.endswith("vllm-console: server error: EngineCore died (InternalServerError)\n")


def test_a_rejected_key_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOpenAI(api_key="sesame") as fake:
        assert run(settings_for(tmp_path, fake.base_url, VLLM_API_KEY="wrong")) == 2
        assert capsys.readouterr().err == (
            f"vllm-console: {fake.base_url}: API key rejected (HTTP 401): check VLLM_API_KEY\n"
        )
        assert run(settings_for(tmp_path, fake.base_url, VLLM_API_KEY="sesame")) == 0


def test_an_unreachable_endpoint_fails_fast_in_one_line_without_a_traceback(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_"))}
    env.update(HOME=str(tmp_path), VLLM_BASE_URL="http://127.0.0.1:9/v1", VLLM_MODEL="m")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "vllm_console", "chat", "hi"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env=env,
    )
    assert time.monotonic() - started < 10
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        "vllm-console: cannot reach http://127.0.0.1:9/v1: cannot connect (connection refused)\n"
    )
