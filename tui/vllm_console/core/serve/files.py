"""The console's own files (run archive, saved specs): read without trust, written privately.

Reading: a file is opened without blocking and read only if it is a regular file, up to a
size cap. A FIFO named `run.json` would otherwise hang the reader forever, a device or a
huge file would fill memory; each is an `OSError` here, which callers treat as damage.

Writing: folders the console creates or owns are 0700 and its files 0600, whatever the umask,
because a run's record and log quote what the server printed and how it was launched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import TextIO

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# Appending never follows a link (a planted log.txt -> ~/.bashrc) nor waits on a FIFO.
APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
APPEND_FLAGS |= os.O_NOCTTY | os.O_CLOEXEC


class NotRegularFile(OSError):
    """A FIFO, socket, device or folder where a file was expected."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(errno.EINVAL, "not a regular file", str(path))


class FileTooLarge(OSError):
    """A file over the size its reader accepts."""

    def __init__(self, path: Path | str, limit: int) -> None:
        super().__init__(errno.EFBIG, f"over {limit} bytes", str(path))


def open_regular(path: Path | str) -> int:
    """A descriptor of `path` for reading: refused unless a regular file; never blocks."""
    if not stat.S_ISREG(os.stat(path).st_mode):  # a device is not even opened
        raise NotRegularFile(path)
    fd = os.open(path, READ_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the stat
            raise NotRegularFile(path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_capped(path: Path | str, limit: int) -> bytes:
    """The whole file, if it is a regular file of at most `limit` bytes."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        if os.fstat(fd).st_size > limit:
            raise FileTooLarge(path, limit)
        data = handle.read(limit + 1)
    if len(data) > limit:  # it grew while we read
        raise FileTooLarge(path, limit)
    return data


def read_range(path: Path | str, offset: int, limit: int) -> tuple[bytes, int]:
    """At most `limit` bytes from `offset` (offset 0: the last `limit` bytes), and where
    they start. A file shorter than `offset` (truncated) gives nothing from its end."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        start = max(0, size - limit) if offset == 0 else min(offset, size)
        handle.seek(start)
        return handle.read(max(0, min(size - start, limit))), start


def private_dir(path: Path, owned: Path) -> Path:
    """Make `path` (and missing parents) with mode 0700, and set 0700 on every folder from
    `owned` down to `path` that we own, created earlier with a looser umask included."""
    missing: list[Path] = []
    here = path
    while not here.exists():
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another console made it meanwhile
            os.mkdir(folder, PRIVATE_DIR)
    chain = [path, *path.parents]
    for folder in chain[: chain.index(owned) + 1] if owned in chain else [path]:
        info = os.stat(folder)
        if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != PRIVATE_DIR:
            os.chmod(folder, PRIVATE_DIR)
    return path


def write_private(path: Path, text: str, mode: int = PRIVATE_FILE) -> None:
    """Replace `path` atomically by a file holding `text`, with `mode` from its first byte."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(fd, mode)
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def open_private_append(path: Path) -> TextIO:
    """`path` opened for appending text, created 0600; a link or non-regular file is refused."""
    fd = os.open(path, APPEND_FLAGS, PRIVATE_FILE)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(path)
        if stat.S_IMODE(info.st_mode) != PRIVATE_FILE:
            os.fchmod(fd, PRIVATE_FILE)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "a", encoding="utf-8")
