"""Fuzzing what `vllm-console web` reads from the network before and after the door.

Before it: the token in a query, the cookie, the Origin of a websocket upgrade, the sizes in
the websocket's URL (`vllm_console.web.access`, `relay.cells_from_query`). After it: the
browser's JSON envelopes (`relay.parse_envelope`). The checks: nothing raises; no credential
but the right one is let in, and no near miss (a prefix, a longer string, another case, the
cookie's value given as the token) opens anything; sizes stay in range; an envelope is one
of the five shapes or nothing. `PARSERS` is read by bench/fuzz_campaign.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from vllm_console.web.access import COOKIE_NAME, TOKEN_PARAM, Gate, Verdict, origin_matches
from vllm_console.web.relay import MAX_CELLS, cells_from_query, parse_envelope

TOKEN = "fuzz-token-0123456789abcdef"
_gate_cookie = Gate(TOKEN).cookie

_text = st.text(max_size=80)
_near = st.sampled_from(
    [TOKEN[:-1], TOKEN + "x", TOKEN.upper(), " " + TOKEN, TOKEN + "\x00", _gate_cookie, ""]
)
_secret = st.one_of(_text, _near)


@st.composite
def requests(draw: st.DrawFn) -> tuple[dict[str, str], dict[str, str]]:
    """A query and cookies that may hold anything but the right credential."""
    query = draw(st.dictionaries(_text, _text, max_size=4))
    cookies = draw(st.dictionaries(_text, _text, max_size=4))
    if draw(st.booleans()):
        query[TOKEN_PARAM] = draw(_secret)
    if draw(st.booleans()):
        cookies[COOKIE_NAME] = draw(_secret.filter(lambda s: s != _gate_cookie))
    return query, cookies


def check_gate(request: tuple[dict[str, str], dict[str, str]]) -> None:
    query, cookies = request
    gate = Gate(TOKEN)
    for _ in range(3):
        verdict = gate.check("203.0.113.9", query, cookies)
        assert verdict in (Verdict.REFUSE, Verdict.LIMITED), (query, cookies, verdict)
    presented = TOKEN_PARAM in query or COOKIE_NAME in cookies
    assert (gate.wrong_count("203.0.113.9") > 0) == presented
    # The right token still opens for an address that never erred.
    assert gate.check("198.51.100.1", {TOKEN_PARAM: TOKEN}, {}) is Verdict.OPEN


def check_origin(pair: tuple[str | None, str | None]) -> None:
    origin, host = pair
    if origin_matches(origin, host) and origin is not None:
        assert host and host.lower() in origin.lower(), (origin, host)


def check_cells(value: str | None) -> None:
    assert 1 <= cells_from_query(value, 80) <= MAX_CELLS


def check_envelope(raw: str) -> None:
    envelope = parse_envelope(raw)
    if envelope is None:
        return
    assert envelope.kind in ("stdin", "resize", "ping", "focus", "blur")
    if envelope.kind == "resize":
        assert 1 <= envelope.width <= MAX_CELLS and 1 <= envelope.height <= MAX_CELLS


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_kinds = st.sampled_from(["stdin", "resize", "ping", "focus", "blur", "quit", "", "x"])
envelopes = st.one_of(
    st.text(max_size=200),
    st.builds(lambda k, v: json.dumps([k, v]), _kinds, _json_values),
    st.builds(lambda v: json.dumps(v), _json_values),
    st.builds(
        lambda w, h: json.dumps(["resize", {"width": w, "height": h}]),
        st.one_of(st.integers(), st.floats(), st.booleans(), st.text(max_size=5)),
        st.one_of(st.integers(), st.floats(), st.booleans(), st.text(max_size=5)),
    ),
    st.just("[" * 5000),  # nesting deep enough to trouble a recursive parser
)
origins = st.tuples(
    st.one_of(st.none(), _text, st.builds(lambda h: f"http://{h}", _text)),
    st.one_of(st.none(), _text),
)
cells = st.one_of(st.none(), _text, st.integers().map(str))

PARSERS: dict[str, tuple[Callable[[Any], None], st.SearchStrategy[Any]]] = {
    "web_gate": (check_gate, requests()),
    "web_origin": (check_origin, origins),
    "web_cells": (check_cells, cells),
    "web_envelope": (check_envelope, envelopes),
}
