"""Property-based checks of every parser of untrusted bytes, shared by the tests and bench/fuzz_campaign.py."""
