"""Property tests of a fleet member's probe and /metrics against a server answering hostile
bytes over a real socket, and of the URLs people type (see strategies_fleet_probe): nothing
raises, nothing overruns its timeout, and only what fits is believed."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings

from tests.fakes.hostile_http import Reply, response
from tests.fuzz import strategies_fleet_probe as fuzz

# Each input is a few loopback requests (a held connection costs the probe's 0.3 s timeout):
# fewer examples than the pure parsers get; bench/fuzz_campaign.py runs the long campaign.
FAST = settings(
    max_examples=40,
    deadline=None,  # the checks time each input themselves, on a shared machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HONEST = {
    "/health": Reply(response(b"")),
    "/version": Reply(response(b'{"version": "0.32.0"}')),
    "/v1/models": Reply(response(b'{"data": [{"id": "tiny"}]}')),
}


@FAST
@given(fuzz.probe_cases())
@example(fuzz.Case(HONEST, healthy=True, models=("tiny",)))
@example(fuzz.Case({**HONEST, "/v1/models": Reply(response(b"[" * 100_000))}, healthy=True))
@example(fuzz.Case({**HONEST, "/health": Reply(response(b"{}", length=99), hold=1.0)}, False))
@example(fuzz.Case({**HONEST, "/version": Reply(response(b'{"version": ' + b"9" * 5000 + b"}"))}))
@example(fuzz.Case({"/v1/models": Reply(response(b'{"data": [{"id": "\\u001b[2J"}]}'))}))
def test_probe(case: fuzz.Case) -> None:
    fuzz.check_probe(case)


@settings(FAST, max_examples=25)  # two readings per input
@given(fuzz.metrics_cases())
@example((Reply(response(b"vllm:num_requests_running 1e300\n")),) * 2)
@example((Reply(response(b"vllm:generation_tokens_total 5\n", length=10**11)),) * 2)
@example(
    (
        Reply(response(b"vllm:generation_tokens_total 5\n")),
        Reply(response(b"vllm:generation_tokens_total 1e308\n")),
    )
)
def test_metrics(case: tuple[Reply, Reply]) -> None:
    fuzz.check_metrics(case)


@settings(max_examples=300, deadline=None)
@given(fuzz.typed_urls())
@example("http://[::zz]:80")
@example("http://xn--a.com")
@example("http://gpu-box:" + "9" * 30)
@example("http://gpu-box/v1/v1")
@example("http://v1")
def test_member_url(text: str) -> None:
    fuzz.check_member_url(text)
