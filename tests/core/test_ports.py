"""The port a new server takes: the asked one, else the next free one, and who had it."""

from __future__ import annotations

import os
import socket
import time

from vllm_console.core.serve.ports import PORT_TRIES, PortChoice, choose_port
from vllm_console.core.serve.proctable import ProcInfo, port_is_free


def nobody(_port: int) -> list[ProcInfo]:
    return []


def test_a_free_port_is_kept() -> None:
    choice = choose_port("127.0.0.1", 8000, is_free=lambda _h, _p: True, holders=nobody)
    assert choice == PortChoice(8000, 8000) and not choice.moved and choice.note() == ""


def test_another_servers_port_moves_on_even_before_it_listens() -> None:
    # a vLLM that is still starting does not listen yet: only the fleet knows its port
    choice = choose_port(
        "127.0.0.1", 8000, {8000, 8001}, is_free=lambda _h, _p: True, holders=nobody
    )
    assert choice.port == 8002
    assert choice.note() == "8000 is busy (another server of this console): using 8002"


def test_a_listening_port_names_its_holder() -> None:
    holder = ProcInfo(4242, "vllm", 4242, "vllm serve m")
    choice = choose_port(
        "127.0.0.1",
        8000,
        is_free=lambda _h, port: port not in (8000, 8001),
        holders=lambda port: [holder] if port == 8000 else [],
    )
    assert choice.port == 8002 and choice.note() == "8000 is busy (vllm/4242): using 8002"


def test_nothing_free_nearby_is_said_and_no_port_is_past_65535() -> None:
    tried: list[int] = []

    def busy(_host: str, port: int) -> bool:
        tried.append(port)
        return False

    choice = choose_port("127.0.0.1", 65500, is_free=busy, holders=nobody)
    assert choice.port is None and max(tried) == 65535
    assert choice.note() == f"65500 is busy (in use), and so are the next {PORT_TRIES}"
    tried.clear()
    choose_port("127.0.0.1", 8000, is_free=busy, holders=nobody)
    assert tried == list(range(8000, 8001 + PORT_TRIES))


def test_a_real_listener_moves_the_port_and_is_named() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        choice = choose_port("127.0.0.1", port)
    assert choice.port is not None and choice.port > port
    assert f"/{os.getpid()})" in choice.note()  # this test's own process holds it


def test_a_bind_test_is_cheap_enough_for_the_ui() -> None:
    # measured ~20 us each here; the check of several ports stays far under a frame
    start = time.perf_counter()
    for _ in range(200):
        port_is_free("127.0.0.1", 1)
    assert (time.perf_counter() - start) / 200 < 0.002
