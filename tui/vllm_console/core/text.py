"""Text from disk or from a server, made safe to show a person on a terminal.

A folder name, a file's contents, a server's log line or an answer can carry control characters:
an ESC starts a sequence that retitles the window, clears the screen or moves the cursor, and a
bidi override (U+202E) reorders the rest of the line so that what is shown is not what is there.
Every such character becomes a visible escape, as Python's `repr` and GNU `ls -b` write it
(`\\x1b`, `\\x07`, `\\u202e`), so a person sees what is really there and the terminal obeys
nothing. Printable text (anything `str.isprintable` accepts, and the space) is left unchanged.

This only makes the characters harmless; whether a widget parses markup is the UI's business
(it shows such text as `Content` or `Text`, never as markup).

JSON output keeps the true strings: `json.dumps` escapes control characters itself.
"""

from __future__ import annotations

__all__ = ["visible", "visible_lines"]

# The escapes a person knows from Python and C; everything else is written by its code point.
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
# os.fsdecode turns each byte of a name that is not UTF-8 into a lone surrogate U+DC80..U+DCFF:
# show the byte it stands for, as ls does, rather than a code point no one wrote.
_SURROGATE_ESCAPE = range(0xDC80, 0xDD00)


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code in _SURROGATE_ESCAPE:
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str) -> str:
    """One line of text (a name, a path, a log line) with every non-printable made visible.

    Newline and tab are escaped too: a name is one line, and a name that breaks the line or
    jumps to a tab stop would pass for two names or misalign a table.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def visible_lines(text: str) -> str:
    """Text of several lines (a chat answer): every non-printable but newline and tab visible."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() or char in "\n\t" else _escape(char) for char in text)
