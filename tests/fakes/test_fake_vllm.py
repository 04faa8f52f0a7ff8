"""The fake `vllm serve` (tests/fakes/fake_vllm.py) behaves like vLLM from the outside."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.net import free_port

FAKE = Path(__file__).with_name("fake_vllm.py")


def wait_until(check: Callable[[], object], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return bool(check())


def session_members(sid: int) -> dict[int, tuple[str, int]]:
    """Live (not zombie) processes of session sid: pid -> (comm, ppid), read from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        state, ppid, _pgrp, session = fields.split()[:4]  # stat fields 3..6
        if int(session) == sid and state not in "ZX":
            found[int(entry.name)] = (comm, int(ppid))
    return found


@dataclass
class Fake:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    http: httpx.Client

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(self.url + path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(self.url + path, **kw)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def listening(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
            return True
        return False

    def wait_ready(self, timeout: float = 10.0) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"fake exited early:\n{self.text()}"
            with contextlib.suppress(httpx.HTTPError):
                return self.http.get(f"{self.url}/health", timeout=0.5).status_code == 200
            return False

        assert wait_until(ready, timeout, 0.05), f"not ready:\n{self.text()}"

    def tree(self) -> dict[str, int]:
        """comm -> pid for the fake's session (the fake leads it: start_new_session)."""
        return {comm: pid for pid, (comm, _) in session_members(self.proc.pid).items()}


Launch = Callable[..., Fake]


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for all: making an httpx client costs ~0.25 s (its SSL context)."""
    with httpx.Client(timeout=5, trust_env=False) as client:
        yield client


@pytest.fixture
def launch(tmp_path: Path, http: httpx.Client) -> Iterator[Launch]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*flags: str, scenario: str = "ok", delay: float = 0.2, port: int = 0) -> Fake:
        port = port or free_port()
        log = tmp_path / f"fake-{len(started)}.log"
        env = {**os.environ, "FAKE_VLLM_SCENARIO": scenario, "FAKE_VLLM_DELAY": str(delay)}
        cmd = [sys.executable, str(FAKE), "serve", "Org/Tiny", "--host", "127.0.0.1"]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*cmd, "--port", str(port), *flags],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        started.append(proc)
        return Fake(proc, port, log, http)

    yield start
    for proc in started:  # the whole session, survivors of a SIGKILLed API server included
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def test_ok_listens_only_when_ready_then_answers(launch: Launch) -> None:
    fake = launch("--served-model-name", "tiny", "--max-model-len", "512", "--seed", "7", delay=0.6)
    assert not fake.listening()  # vLLM binds early but accepts connections only once up
    fake.wait_ready()
    assert fake.get("/version").json() == {"version": "0.32.0"}
    models = fake.get("/v1/models").json()
    assert models["object"] == "list"
    assert [(m["id"], m["max_model_len"]) for m in models["data"]] == [("tiny", 512)]
    assert "vllm:num_requests_running{" in fake.get("/metrics").text
    body = {"model": "Org/Tiny", "messages": [{"role": "user", "content": "hi"}]}
    wrong = fake.post("/v1/chat/completions", json=body)
    assert wrong.status_code == 404
    assert "does not exist" in wrong.json()["error"]["message"]

    text, pid = fake.text(), fake.proc.pid
    assert f"(APIServer pid={pid}) INFO " in text
    assert "'max_model_len': 512" in text and "'seed': 7" in text  # the non-default args line
    milestones = [
        "vLLM API server version 0.32.0",
        "non-default args: {",
        "Loading safetensors checkpoint shards: 100% Completed | 1/1",
        "Loading weights took",
        "Model loading took 0.5 GiB",
        "Available KV cache memory: 1.0 GiB",
        "KV cache size: 2,097,152 tokens",
        "Maximum concurrency for 512 tokens per request: 4096.00x",
        f"Starting vLLM server on http://127.0.0.1:{fake.port}",
        "Available routes are:",
        f"INFO:     Started server process [{pid}]",
        "INFO:     Waiting for application startup.",
        "INFO:     Application startup complete.",
    ]
    where = [text.find(m) for m in milestones]
    assert -1 not in where and where == sorted(where), dict(zip(milestones, where, strict=True))
    assert '"GET /health HTTP/1.1" 200 OK' in text  # uvicorn's access log


def test_chat_streams_sse_and_answers_json(launch: Launch) -> None:
    fake = launch()
    fake.wait_ready()
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    with fake.http.stream("POST", f"{fake.url}/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert "fake vLLM" in content and len(chunks) > 3
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    plain = fake.post("/v1/chat/completions", json={**body, "stream": False}).json()
    assert plain["object"] == "chat.completion"
    assert plain["choices"][0]["message"]["content"].strip() == content.strip()
    assert plain["usage"]["completion_tokens"] > 0


def test_api_key_guards_only_v1(launch: Launch) -> None:
    fake = launch("--api-key", "sekret")
    fake.wait_ready()
    assert fake.get("/v1/models").status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert fake.get("/v1/models", headers=bad).status_code == 401
    good = {"Authorization": "Bearer sekret"}
    assert fake.get("/v1/models", headers=good).json()["data"][0]["id"] == "Org/Tiny"
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    assert fake.post("/v1/chat/completions", json=chat).status_code == 401
    assert fake.post("/v1/chat/completions", json=chat, headers=good).is_success
    for path in ("/health", "/metrics", "/version"):
        assert fake.get(path).status_code == 200, path


def test_process_tree_is_renamed_and_shares_the_session(launch: Launch) -> None:
    fake = launch()
    fake.wait_ready()
    members = session_members(fake.proc.pid)
    by_comm = {comm: (pid, ppid) for pid, (comm, ppid) in members.items()}
    assert len(members) == 3 and members[fake.proc.pid][1] == os.getpid(), members
    engine, engine_parent = by_comm["VLLM::EngineCor"]
    worker, worker_parent = by_comm["VLLM::Worker"]
    assert engine_parent == fake.proc.pid and worker_parent == engine
    for pid in (engine, worker):
        assert os.getpgid(pid) == fake.proc.pid  # same process group: killpg reaches them
        assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"VLLM::")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_stop_signal_shuts_everything_down(launch: Launch, signum: int) -> None:
    fake = launch()
    fake.wait_ready()
    assert len(session_members(fake.proc.pid)) == 3
    started = time.monotonic()
    fake.proc.send_signal(signum)
    assert fake.proc.wait(2) == 0
    assert time.monotonic() - started < 1.0
    assert wait_until(lambda: not session_members(fake.proc.pid), 2.0)
    text = fake.text()
    assert "[shutdown] EngineCore: trigger received signal=SIGTERM" in text
    assert "ERROR" in text and "EngineDeadError" in text  # harmless, as on a real clean stop
    assert "INFO:     Application shutdown complete." in text


@pytest.mark.parametrize("target", ["api-while-loading", "group-when-ready"])
def test_sigterm_while_loading_or_to_the_group_is_clean(launch: Launch, target: str) -> None:
    fake = launch(delay=1.0)
    if target == "api-while-loading":
        assert wait_until(lambda: "Starting to load model" in fake.text(), 2)
        fake.proc.terminate()
    else:
        fake.wait_ready()
        os.killpg(fake.proc.pid, signal.SIGTERM)
    assert fake.proc.wait(2) == 0
    assert wait_until(lambda: not session_members(fake.proc.pid), 2.0)
    assert "Application startup complete" not in fake.text() or target != "api-while-loading"


def test_sigkill_of_the_api_server_leaves_children_alive(launch: Launch) -> None:
    fake = launch()
    fake.wait_ready()
    fake.proc.kill()
    fake.proc.wait(2)
    time.sleep(0.3)
    assert sorted(fake.tree()) == ["VLLM::EngineCor", "VLLM::Worker"]
    assert not fake.listening()
    os.killpg(fake.proc.pid, signal.SIGKILL)  # what the console must do
    assert wait_until(lambda: not fake.tree(), 2.0)


def test_engine_death_after_ready_ends_the_api_server(launch: Launch) -> None:
    fake = launch()
    fake.wait_ready()
    os.kill(fake.tree()["VLLM::EngineCor"], signal.SIGKILL)
    assert fake.proc.wait(2) == 1
    assert "Engine core proc EngineCore died unexpectedly" in fake.text()
    assert wait_until(lambda: not fake.tree(), 2.0)


ENGINE_FAILURE = "RuntimeError: Engine core initialization failed. See root cause above."


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("oom", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."),
        ("max_model_len", "the estimated maximum model length is 11568."),
        ("free_memory", "ValueError: Free memory on device cuda:0 (3.1/23.55 GiB) on startup"),
        ("no_kv", "ValueError: No available memory for the cache blocks."),
        ("inductor", "AssertionError: duplicate template name"),
        ("port", "OSError: [Errno 98] Address already in use"),
    ],
)
def test_failure_scenarios_print_the_cause_and_exit_1(
    launch: Launch, scenario: str, message: str
) -> None:
    fake = launch(scenario=scenario, delay=0.1)
    assert fake.proc.wait(5) == 1
    text = fake.text()
    assert message in text
    if scenario != "port":
        assert ENGINE_FAILURE in text and text.index(message) < text.index(ENGINE_FAILURE)
    if scenario == "oom":
        assert text.index("Loading weights took") < text.index(message)
    assert wait_until(lambda: not fake.tree(), 2.0)
    assert "Application startup complete" not in text


def test_max_model_len_within_the_estimate_starts(launch: Launch) -> None:
    fake = launch("--max-model-len", "11568", scenario="max_model_len")
    fake.wait_ready()
    assert fake.get("/v1/models").json()["data"][0]["max_model_len"] == 11568


def test_a_port_really_taken_fails_with_errno_98(launch: Launch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        fake = launch(port=taken.getsockname()[1])
        assert fake.proc.wait(5) == 1
    assert "[Errno 98] Address already in use" in fake.text()


def test_hub_scenario_retries_without_progress(launch: Launch) -> None:
    fake = launch(scenario="hub", delay=0.05)  # a retry line every 0.1 s
    assert wait_until(lambda: "We couldn't connect to 'https://huggingface.co'" in fake.text(), 3)
    assert fake.proc.poll() is None and not fake.listening()
    assert "Max retries exceeded with url: /Org/Tiny" in fake.text()
    assert "Loading weights" not in fake.text()
    assert list(session_members(fake.proc.pid)) == [fake.proc.pid]  # no engine yet
    fake.proc.terminate()
    assert fake.proc.wait(2) == 0


def test_ignore_term_survives_sigterm(launch: Launch) -> None:
    fake = launch(scenario="ignore_term")
    fake.wait_ready()
    fake.proc.terminate()
    os.killpg(fake.proc.pid, signal.SIGINT)
    time.sleep(1.0)
    assert fake.proc.poll() is None and len(fake.tree()) == 3
    assert fake.get("/health").status_code == 200


def test_slow_scenario_is_chatty_while_loading(launch: Launch) -> None:
    fake = launch(scenario="slow", delay=0.5)
    fake.wait_ready()
    chatty = [line for line in fake.text().splitlines() if "[weight_utils.py:512] Loaded" in line]
    assert len(chatty) >= 100
    assert chatty[0].startswith("(Worker pid=")
