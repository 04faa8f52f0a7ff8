"""Text made safe for a terminal: every control character visible, printable text unchanged."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from vllm_console.core.text import visible, visible_lines

# What a terminal may obey: C0, DEL, C1, and the characters that reorder or hide text.
BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]
CONTROLS = [*map(chr, range(0x20)), "\x7f", *map(chr, range(0x80, 0xA0)), *BIDI]


def obeyable(text: str, *, keep: str = "") -> list[str]:
    """The characters of `text` a terminal would act on, or show as nothing."""
    return [c for c in text if c not in keep and (c in CONTROLS or not c.isprintable())]


def test_escapes_as_repr_writes_them() -> None:
    assert visible("\x1b]0;pwned\x07Org/Name") == "\\x1b]0;pwned\\x07Org/Name"
    assert visible("Evil\x1b[2J/X") == "Evil\\x1b[2J/X"
    assert visible("a\u202eb") == "a\\u202eb"
    assert visible("a\U000e0001") == "a\\U000e0001"
    assert visible("x\x7f\x9by") == "x\\x7f\\x9by"


def test_a_name_is_one_line() -> None:
    assert visible("two\nlines\tand\r") == "two\\nlines\\tand\\r"


def test_several_lines_keep_newline_and_tab() -> None:
    assert visible_lines("one\n\ttwo\x1b[2J\r") == "one\n\ttwo\\x1b[2J\\r"


def test_a_byte_that_is_not_utf8_shows_as_that_byte() -> None:
    name = b"caf\xe9".decode("utf-8", "surrogateescape")  # as os.listdir gives it
    assert visible(name) == "caf\\xe9"
    visible(name).encode("utf-8")  # printable: print() cannot fail on it


def test_printable_text_and_markup_are_left_alone() -> None:
    kept = ("Qwen/Qwen2.5-7B", "日本語のモデル", "[bold red]x[/]", "a\\x1b", "emoji 🦙 ok", "")
    for text in kept:
        assert visible(text) == text
        assert visible_lines(text) == text


@given(st.text())
def test_no_control_character_survives(text: str) -> None:
    assert obeyable(visible(text)) == []
    assert obeyable(visible_lines(text), keep="\n\t") == []


@given(st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))))
def test_printable_input_is_unchanged(text: str) -> None:
    printable = "".join(c for c in text if c.isprintable())
    assert visible(printable) == printable
    assert visible_lines(printable) == printable


@given(st.text())
def test_what_was_there_can_be_read_back(text: str) -> None:
    """Each escape stands for exactly one character: nothing is dropped."""
    shown = visible(text)
    escapes = sum(1 for c in text if not c.isprintable())
    assert len(shown) >= len(text)
    assert shown.count("\\") >= escapes
    assert all(unicodedata.category(c) != "Cc" for c in shown)
