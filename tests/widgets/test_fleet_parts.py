"""The fleet's parts without a screen: the table's cells, the header's sum, and the /metrics
reader against a server that answers anything (a dead port, a refusal, a drip, a flood)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.net import free_port
from vllm_console.core.endpoint.metrics import MetricsRates, MetricsSnapshot
from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.serve.spec import LaunchRequest, LaunchSpec
from vllm_console.widgets.fleet import poll
from vllm_console.widgets.fleet.cells import MemberRow, Reading, cells
from vllm_console.widgets.fleet.poll import Poll, Target, read_metrics
from vllm_console.widgets.header_line import fleet_summary
from vllm_console.widgets.server.status import ServerState

METRICS = (
    'vllm:num_requests_running{engine="0"} 3.0\n'
    'vllm:num_requests_waiting{engine="0"} 1.0\n'
    'vllm:kv_cache_usage_perc{engine="0"} 0.25\n'
    'vllm:generation_tokens_total{engine="0"} 1000.0\n'
)


def ready(since: float) -> ServerState:
    spec = LaunchSpec("/models/qwen", port=8001, gpus=(0, 2))
    request = LaunchRequest("k", "Qwen/Qwen2.5-7B", spec.model, spec, ("vllm",))
    return ServerState(
        Phase.READY, "qwen", "http://127.0.0.1:8001/v1", since, since, since, request=request
    )


def texts(row: MemberRow, now: float) -> dict[str, str]:
    return {key: text.plain for key, text in cells(row, now).items()}


def test_a_ready_member_with_a_reading() -> None:
    snap = MetricsSnapshot(0.0, requests_running=3, requests_waiting=1, kv_cache_usage=0.425)
    reading = Reading(snap, MetricsRates(2.0, generation_tokens_per_s=1234.56))
    row = MemberRow("qwen", "Qwen/Qwen2.5-7B", "pid 42", (0, 2), 8001, ready(100.0), reading)
    assert texts(row, 100.0 + 192) == {
        "name": "qwen",
        "phase": "ready 3m",
        "health": "ok",
        "requests": "3/1",
        "kv": "42 %",
        "gen": "1,234.6",
        "port": "8001",
        "gpus": "0,2",
        "where": "pid 42",
        "model": "Qwen/Qwen2.5-7B",
    }


def test_a_dead_endpoint_shows_dashes_and_no_answer() -> None:
    dead = Reading(MetricsSnapshot(0.0, problems=("cannot connect",)))
    row = MemberRow("qwen", state=ready(0.0), reading=dead)
    shown = texts(row, 10.0)
    assert shown["health"] == "no answer"
    assert {shown[k] for k in ("requests", "kv", "gen", "port", "where")} == {"—"}
    assert shown["gpus"] == "inherited"


def test_a_stopped_member_shows_no_load_even_with_an_old_reading() -> None:
    snap = MetricsSnapshot(0.0, requests_running=3, requests_waiting=0, kv_cache_usage=0.5)
    stopped = ServerState(Phase.STOPPED, note="stopped in 0.4 s")
    shown = texts(MemberRow("qwen", state=stopped, reading=Reading(snap)), 10.0)
    assert shown["phase"] == "stopped" and shown["health"] == "—" and shown["kv"] == "—"


def test_phases_are_short_and_timed() -> None:
    loading = ServerState(Phase.LOADING_WEIGHTS, phase_since=0.0)
    assert texts(MemberRow("a", state=loading), 40.0)["phase"] == "loading 0:40"
    up = ServerState(Phase.READY, ready_at=0.0)
    shown = [texts(MemberRow("a", state=up), t)["phase"] for t in (42.0, 719.0, 11_100.0)]
    assert shown == ["ready <1m", "ready 11m", "ready 3h05m"]  # drawn again once a minute
    remote = MemberRow("b", "m", "http://gpu-box:8000")
    assert texts(remote, 0.0)["phase"] == "remote" and texts(remote, 0.0)["health"] == "…"


def test_hostile_names_are_text_made_visible_and_capped() -> None:
    name = "[b]x\x1b[2J" + "n" * 80
    shown = cells(MemberRow(name, model="\x07" + "m" * 100), 0.0)
    assert shown["name"].plain == "[b]x\\x1b[2Jnn…"
    assert shown["name"].plain.endswith("…") and len(shown["name"].plain) == 14
    assert not shown["name"].spans  # the brackets are text, not styles
    assert "\x07" not in shown["model"].plain and len(shown["model"].plain) == 32


def test_the_header_sums_the_fleet() -> None:
    assert fleet_summary([]) == ""
    states = [
        ServerState(Phase.READY),
        ServerState(Phase.LOADING_WEIGHTS),
        ServerState(Phase.READY),
        ServerState(Phase.FAILED),
        ServerState(Phase.STOPPED),
        ServerState(),  # nothing launched in this pane yet
    ]
    assert fleet_summary(states) == "servers: 2 ready, 1 starting, 1 failed, 1 stopped"


# -- the /metrics reader --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def answering(head: bytes | None, *bodies: bytes, drip: float = 0.0) -> AsyncIterator[str]:
    """A loopback server that answers each request with `head` (None: a length-sized 200)
    and the next of `bodies` (the last one again once they run out), a byte every `drip` s."""
    queue = list(bodies)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = queue.pop(0) if len(queue) > 1 else queue[0]
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(ok_head(len(body)) if head is None else head)
            if drip:
                for byte in body:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(drip)
            else:
                writer.write(body)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/v1"


def ok_head(length: int | None = None, status: str = "200 OK") -> bytes:
    sized = f"Content-Length: {length}\r\n" if length is not None else ""
    return f"HTTP/1.1 {status}\r\n{sized}Connection: close\r\n\r\n".encode()


async def read(url: str, deadline: float = 2.0) -> MetricsSnapshot:
    async with httpx.AsyncClient(trust_env=False) as client:
        return await read_metrics(client, url, deadline=deadline)


async def test_a_good_answer_is_parsed() -> None:
    body = METRICS.encode()
    async with answering(None, body) as url:
        snap = await read(url)
    assert snap.requests_running == 3 and snap.kv_cache_usage == 0.25 and not snap.problems


async def test_trouble_is_a_problem_in_words() -> None:
    async with answering(ok_head(0, "503 Service Unavailable"), b"") as url:
        assert (await read(url)).problems[0].endswith("answered HTTP 503")
    dead = await read(f"http://127.0.0.1:{free_port()}")
    assert dead.empty and "cannot connect" in dead.problems[0]


async def test_a_flood_stops_at_the_cap() -> None:
    big = b"# " + b"x" * (poll.METRICS_CAP + 10) + b"\n"
    async with answering(ok_head(None), big) as url:  # no length: read until the cap
        snap = await read(url)
    assert snap.empty and "over 4 MiB" in snap.problems[0]


async def test_a_drip_is_cut_at_the_deadline() -> None:
    async with answering(None, METRICS.encode(), drip=0.05) as url:
        started = time.monotonic()
        snap = await read(url, deadline=0.5)
    assert time.monotonic() - started < 1.5
    assert snap.empty and "did not end within 0.5 s" in snap.problems[0]


async def test_rates_come_from_the_last_good_reading() -> None:
    first, later = METRICS.encode(), METRICS.replace("1000.0", "3000.0").encode()
    dead = Target(f"http://127.0.0.1:{free_port()}")
    async with answering(None, first, later) as url, Poll() as fleet:
        one = await fleet.read({"a": Target(url), "b": dead})
        await asyncio.sleep(0.1)
        two = await fleet.read({"a": Target(url), "b": dead})
    assert one["a"].answered and one["a"].rates is None  # a first reading: no rates yet
    rate = two["a"].rates
    assert rate is not None and rate.generation_tokens_per_s is not None
    assert 2000 / 2.0 < rate.generation_tokens_per_s < 2000 / 0.1  # over the time between
    assert not two["b"].answered and two["b"].rates is None  # one dead member holds none up


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    status=st.sampled_from(["200 OK", "404 Not Found", "500 Oops", "200 Fine"]),
    body=st.one_of(
        st.binary(max_size=2000),
        st.text(max_size=500).map(str.encode),
        st.just(METRICS.encode()).map(lambda b: b.replace(b"3.0", b"1e999")),
        st.just(METRICS.encode()).map(lambda b: b.replace(b"\n", b"\r\x00")),
    ),
    lie=st.sampled_from([None, 0, 5, 10**6]),
)
def test_any_answer_is_a_snapshot_never_an_exception(
    status: str, body: bytes, lie: int | None
) -> None:
    """Whatever the server says (lying lengths included), the reader returns a snapshot in
    time, and a figure in it is one a screen can show."""

    async def run() -> MetricsSnapshot:
        async with answering(ok_head(lie, status), body) as url:
            return await read(url, deadline=1.0)

    started = time.monotonic()
    snap = asyncio.run(run())
    assert time.monotonic() - started < 3.0
    assert isinstance(snap, MetricsSnapshot)
    for value in (snap.requests_running, snap.requests_waiting, snap.kv_cache_usage):
        assert value is None or 0 <= value < 1e18
    row = MemberRow("m", state=ServerState(Phase.READY), reading=Reading(snap))
    assert all("\x00" not in text.plain for text in cells(row, 0.0).values())


def test_a_ready_servers_status_line_changes_once_a_minute() -> None:
    from vllm_console.widgets.server.status import status_line

    up = ServerState(Phase.READY, phase_since=0.0, ready_at=0.0)
    assert status_line(up, 5.0) == status_line(up, 59.0)  # nothing to draw again
    assert "up 2m" in status_line(up, 125.0).plain and "up <1m" in status_line(up, 5.0).plain
    loading = ServerState(Phase.LOADING_WEIGHTS, phase_since=0.0)
    assert "0:05" in status_line(loading, 5.0).plain  # a start's progress still ticks
