"""Property tests of `core.endpoint`'s parsers of untrusted bytes (see strategies_endpoint):
a chat answer's server-sent events and /metrics never raise, answer within 1 s, and give
figures a person can read."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings

from tests.fuzz import strategies_endpoint as fuzz

# A few seconds per test in the fast suite; bench/fuzz_campaign.py runs the long campaign.
FAST = settings(
    max_examples=80,
    deadline=None,  # the checks time each input themselves (1 s), on a shared machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FAST
@given(fuzz.sse_streams())
@example(b"data: " + b"[" * 100_000 + b"\n\n")
@example(b"data: " + b'{"a":' * 100_000)  # one long line, fed a few bytes at a time too
@example(b'data: {"choices": [], "usage": {"completion_tokens": ' + b"9" * 4000 + b"}}\n\n")
@example(b'data: {"choices": [], "usage": {"completion_tokens": -5}}\n\n')
@example(b'data: {"choices": [{"delta": {"content": "a"}, "finish_reason": NaN}]}\n\n')
@example(b"data: \xff\xfe\n\ndata: [DONE]\r\n\r\n")
def test_sse(data: bytes) -> None:
    fuzz.check_sse(data)


@FAST
@given(fuzz.metrics_texts())
@example("vllm:num_requests_running 1e300\n")
@example("vllm:generation_tokens_total NaN\nvllm:generation_tokens_total +Inf\n")
@example("vllm:num_requests_running " + "9" * 400 + "\n")
@example('vllm:time_to_first_token_seconds_bucket{le="1e300"} 5\n')
@example('vllm:time_to_first_token_seconds_bucket{le="+Inf"} NaN\n')
@example("vllm:prefix_cache_hits_total 5\nvllm:prefix_cache_queries_total 4.9e-324\n")
@example("vllm:num_requests_running{" + ",".join(f'l{i}="v"' for i in range(10_000)) + "} 1\n")
@example("vllm:num_requests_running{\x00\ud800} 1\n")
def test_metrics(text: str) -> None:
    fuzz.check_metrics(text)
