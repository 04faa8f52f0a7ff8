"""The .env file: read as python-dotenv reads it, but strictly.

A line python-dotenv cannot parse is an `EnvFileError` with its number (python-dotenv only
warns and drops the key), and the file is opened without blocking and read up to a cap.
`config` builds the settings from it; nothing here reads the environment.
"""

from __future__ import annotations

import errno
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vllm_console.core.files import read_capped, reason


class EnvFileError(Exception):
    """A .env file that cannot be read, or a line of it that is not KEY=VALUE (line_no 0:
    the file as a whole)."""

    def __init__(self, path: Path, line_no: int, line: str, reason: str) -> None:
        self.path, self.line_no, self.line, self.reason = path, line_no, line, reason
        super().__init__(f"{path}:{line_no}: {reason}: {line.strip()!r}")


ENV_FILE_LIMIT = 1 << 20  # a settings file is a few hundred bytes; refuse anything huge


@dataclass(frozen=True)
class EnvFile:
    """A .env file's values and the line each key was set on (for messages)."""

    path: Path
    values: Mapping[str, str]
    lines: Mapping[str, int]

    def origin(self, key: str) -> str:
        return f"{self.path} line {self.lines[key]}" if key in self.lines else str(self.path)


def read_env_text(path: Path) -> str:
    """The file's text: opened without blocking (a FIFO must not hang us), regular files only,
    at most ENV_FILE_LIMIT bytes."""
    try:
        data = read_capped(path, ENV_FILE_LIMIT)
    except OSError as exc:
        why = reason(exc)
        if exc.errno == errno.EFBIG:
            why = f"over {ENV_FILE_LIMIT // 1024} KiB: not a .env file"
        raise EnvFileError(path, 0, "", why) from None
    return data.decode("utf-8", errors="replace")


def parse_env_file(path: Path) -> EnvFile:
    """Read a .env file as python-dotenv does (BOM, CRLF, `export`, quotes, comments,
    multi-line values, ${VAR} expansion); a line it cannot parse is an `EnvFileError`
    with its number, rather than python-dotenv's warning and a silently missing key.

    A key without `=` has no value in python-dotenv's terms: it sets nothing here."""
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    text = read_env_text(path)
    lines: dict[str, int] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.string.splitlines()[0] if binding.original.string else ""
            raise EnvFileError(path, binding.original.line, line, "not KEY=VALUE")
        if binding.key is not None and binding.value is not None:
            lines[binding.key] = binding.original.line
    parsed = dotenv_values(stream=io.StringIO(text), interpolate=True)
    values = {key: value for key, value in parsed.items() if value is not None}
    return EnvFile(path, values, lines)
