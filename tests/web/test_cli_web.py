"""`vllm-console web` on the command line: the token from the environment is checked and
never handed down, a bind beyond loopback is warned about, the address is printed once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.fakes.net import free_port
from tests.web.browserless import Browser, web_env, web_server
from tests.web.helpers import TOKEN


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_a_weak_token_is_refused_without_being_shown(tmp_path: Path) -> None:
    env = {**web_env(tmp_path), "VLLM_CONSOLE_WEB_TOKEN": "short secret!"}
    done = subprocess.run(
        [sys.executable, "-m", "vllm_console", "web", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "VLLM_CONSOLE_WEB_TOKEN must be 16 to 256 characters" in done.stderr
    assert "short secret" not in done.stderr + done.stdout


def test_beyond_loopback_warns_and_the_address_is_printed_once(tmp_path: Path) -> None:
    env = web_env(tmp_path)
    with web_server(env, "--host", "0.0.0.0") as (proc, _port):
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 0
        assert proc.stdout is not None and proc.stderr is not None
        out, err = proc.stdout.read(), proc.stderr.read()
    assert "WARNING: listening on 0.0.0.0" in err and TOKEN not in err
    assert TOKEN not in out  # the first line, read by web_server, was the only one


async def test_the_console_does_not_inherit_the_token(tmp_path: Path) -> None:
    env = web_env(tmp_path)
    with web_server(env) as (proc, port):
        browser = Browser(port)
        await browser.open()
        await browser.wait_for("Org/Tiny")
        (console,) = children(proc.pid)
        environ = Path(f"/proc/{console}/environ").read_bytes()
        assert b"VLLM_CONSOLE_WEB_TOKEN" not in environ and TOKEN.encode() not in environ
        assert os.getsid(console) == console  # a session of its own: Ctrl-C reaches web only
        await browser.close()
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 0


def test_web_flags_are_the_web_server_s_and_settings_pass_through() -> None:
    from vllm_console.cli import build_parser, setting_overrides

    web = ["web", "--host", "0.0.0.0", "--port", "9000", "--keep-servers"]
    given = ["--base-url", "http://gpu-box:8000/v1", "--max-model-len", "4096"]
    args = build_parser().parse_args(["--host", "10.0.0.5", *web, *given])
    assert (args.web_host, args.web_port, args.keep_servers) == ("0.0.0.0", 9000, True)
    assert setting_overrides(args) == {
        "VLLM_CONSOLE_HOST": "10.0.0.5",  # a launched server's, given before the command
        "VLLM_BASE_URL": "http://gpu-box:8000/v1",
        "VLLM_CONSOLE_MAX_MODEL_LEN": "4096",
    }
    plain = build_parser().parse_args(["web"])
    assert (plain.web_host, plain.web_port, plain.keep_servers) == ("127.0.0.1", 8022, False)
