"""Headless commands meet hostile names: escapes shown, never sent to the terminal.

Model folders named with an OSC title sequence, a clear-screen sequence and Rich markup; a
run archive and a server whose text carries the same; JSON keeps the true strings.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes import fake_openai
from tests.fakes.fake_nvml import FakeDevice, FakeNvml, FakeProc
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.hostile_names import IDS, SHOWN, inert, write_hostile_models
from vllm_console.cli import main
from vllm_console.commands.chat import cmd_chat
from vllm_console.commands.gpus import cmd_gpus
from vllm_console.config import load_settings
from vllm_console.core.serve.runs import RunArchive


def assert_inert(text: str) -> None:
    assert inert(text), text


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith(("VLLM_", "HF_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    work = tmp_path / "work"
    write_hostile_models(work / "models")
    monkeypatch.chdir(work)
    return work


def test_models_table_shows_the_names_escaped(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models"]) == 0
    out, err = capsys.readouterr()
    assert_inert(out + err)
    for shown in SHOWN:
        assert shown in out


def test_models_json_keeps_the_true_names(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    out = capsys.readouterr().out
    assert_inert(out)  # json.dumps writes \u001b, not the byte
    assert sorted(e["id"] for e in json.loads(out)) == sorted(IDS.values())


def test_resolve_shows_the_places_tried_escaped(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resolve", "Evil\x1b[2J/X"]) == 0
    out = capsys.readouterr().out
    assert_inert(out)
    assert "Evil\\x1b[2J--X: exists" in out and "Evil\\x1b[2J/X -> " in out
    assert main(["resolve", "Evil\x1b[2J/X", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["path"].endswith("Evil\x1b[2J--X")


def test_runs_and_their_log_are_shown_escaped(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(environ={}, cwd=home, home=home.parent / "home")
    recorder = RunArchive(settings.runs_dir).new("\x1b]0;pwned\x07Org/Name", ["vllm"], {}, 8000)
    recorder.write_lines(["INFO ready", "model says \x1b[2J\x1b]0;t\x07"])
    recorder.finish(status="failed", returncode=1, reason="died: \x1b[31mred")
    run_id = recorder.info.id
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert_inert(out)
    assert "died: \\x1b[31mred" in out
    assert main(["runs", "--log", run_id]) == 0
    out = capsys.readouterr().out
    assert out == "INFO ready\nmodel says \\x1b[2J\\x1b]0;t\\x07\n"
    assert main(["runs", "--json"]) == 0
    (data,) = json.loads(capsys.readouterr().out)
    assert data["reason"] == "died: \x1b[31mred"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def rude_server(monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    """A server whose model name and answer carry escape sequences."""
    monkeypatch.setattr(fake_openai, "word", lambda i: f"line{i}\n\t\x1b[2J\x1b]0;t\x07 ")
    return FakeOpenAI(models=["\x1b]0;evil\x07m"], tokens=2)


def chat(tmp_path: Path, base_url: str, **kw: object) -> int:
    settings = load_settings(environ={"VLLM_BASE_URL": base_url}, cwd=tmp_path, home=tmp_path)
    options: dict[str, object] = dict(
        model=None, system=None, as_json=False, max_tokens=None, temperature=None
    )
    options.update(kw)
    return cmd_chat(settings, "hi", **options)  # type: ignore[arg-type]


def test_chat_answer_on_a_terminal_is_escaped_but_keeps_its_lines(
    tmp_path: Path,
    rude_server: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    with rude_server:
        assert chat(tmp_path, rude_server.base_url) == 0
    out, err = terminal.getvalue(), capsys.readouterr().err
    assert out.startswith("line0\n\t\\x1b[2J\\x1b]0;t\\x07 line1\n\t")
    assert "\x1b" not in out and "\x07" not in out
    assert_inert(err)
    assert "\\x1b]0;evil\\x07m" in err


def test_chat_answer_into_a_pipe_is_unchanged(
    tmp_path: Path, rude_server: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    with rude_server:
        assert chat(tmp_path, rude_server.base_url) == 0
    out, err = capsys.readouterr()
    assert out.startswith("line0\n\t\x1b[2J\x1b]0;t\x07 line1\n\t")
    assert_inert(err)


def test_chat_json_is_the_true_answer_and_inert(
    tmp_path: Path, rude_server: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    with rude_server:
        assert chat(tmp_path, rude_server.base_url, as_json=True) == 0
    out = capsys.readouterr().out
    assert_inert(out.rstrip("\n"))
    assert json.loads(out)["text"].startswith("line0\n\t\x1b[2J\x1b]0;t\x07 ")


def test_gpus_shows_device_and_process_names_escaped(tmp_path: Path) -> None:
    """A process names itself (its comm): one called like an escape sequence stays text."""
    script = "import sys, time; open('/proc/self/comm', 'w').write(sys.argv[1]); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", script, "\x1b]0;pwned\x07x"])
    try:
        deadline = time.monotonic() + 10
        comm = Path(f"/proc/{child.pid}/comm")
        while "pwned" not in comm.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        device = FakeDevice(name="Evil\x1b[2JGPU", processes=[FakeProc(child.pid, 1 << 30)])
        out = io.StringIO()
        settings = load_settings(environ={}, cwd=tmp_path, home=tmp_path)
        nvml = FakeNvml([device])
        code = cmd_gpus(settings, as_json=False, watch=False, interval=1.0, nvml=nvml, out=out)
    finally:
        child.kill()
        child.wait()
    text = out.getvalue()
    assert code == 0 and inert(text), text
    assert "Evil\\x1b[2JGPU" in text and "\\x1b]0;pwned\\x07" in text
