"""Property test of the ModelScope listing reader (see strategies_hub): whatever a server
sends, a list of safe files or one clear `ListingError`."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from tests.fuzz import strategies_hub as fuzz

# A few seconds in the fast suite; bench/fuzz_campaign.py runs the long campaign.
FAST = settings(
    max_examples=200,
    deadline=None,  # the check times each input itself, on a shared machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FAST
@given(fuzz.listings())
def test_listing(body: bytes) -> None:
    fuzz.check_listing(body)
