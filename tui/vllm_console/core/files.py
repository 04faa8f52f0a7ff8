"""Files the console reads without trusting them, and the files it writes privately.

Reading (the catalog's model files and index, the run archive, saved specs, `.env`): a model
folder is anyone's: `config.json` may be a FIFO (a plain `open` waits forever for a
writer), a link to `/dev/zero` (endless) or to a tty (which `open` would make our controlling
terminal). So a file is opened with `O_NONBLOCK | O_NOCTTY`, checked with `fstat` on the open
descriptor (which sees what a link points to, and cannot be swapped after the check), and
read only if it is a regular file, never past a cap chosen for what the file is.

Failures are `OSError`s whose `strerror` is a short reason for a problem on the entry;
`NOT_REGULAR` is the one for FIFOs, sockets and devices, so a caller can word it
"config.json is not a regular file".

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

NOT_REGULAR = "not a regular file"
TOO_LARGE = "file too large"

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
# Appending never follows a link (a planted log.txt -> ~/.bashrc) nor waits on a FIFO.
APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
APPEND_FLAGS |= os.O_NOCTTY | os.O_CLOEXEC
_FIRST_READ = 65536


def open_regular(path: str | Path) -> tuple[int, os.stat_result]:
    """(an open descriptor, its stat) of the regular file at `path`; the caller closes it.

    OSError if it cannot be opened or is not a regular file (`strerror` is `NOT_REGULAR`).
    A socket cannot be opened at all (ENXIO); its error is given the same reason.
    """
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(errno.ENXIO, NOT_REGULAR) from None
        raise
    except ValueError as exc:  # a NUL in a name read from a damaged file
        raise OSError(errno.EINVAL, "invalid file name") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, NOT_REGULAR)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_fd(fd: int, cap: int) -> bytes:
    """The rest of an open file, in as few reads as possible; OSError past `cap` bytes."""
    chunks = [os.read(fd, min(_FIRST_READ, cap + 1))]
    size = len(chunks[0])
    while chunks[-1]:
        if size > cap:
            raise OSError(errno.EFBIG, TOO_LARGE)
        chunks.append(os.read(fd, min(1 << 20, cap + 1 - size)))
        size += len(chunks[-1])
    return b"".join(chunks)


def read_capped(path: str | Path, cap: int) -> bytes:
    """A whole small regular file; OSError if it is not one, or is longer than `cap`."""
    fd, _ = open_regular(path)
    try:
        return read_fd(fd, cap)
    finally:
        os.close(fd)


def read_head(path: str, size: int) -> tuple[bytes, os.stat_result]:
    """At most the first `size` bytes of a regular file (a ref, a header's start), and its
    stat, taken when it was opened (before the read)."""
    fd, st = open_regular(path)
    try:
        return os.read(fd, size), st
    finally:
        os.close(fd)


def reason(exc: OSError) -> str:
    """The short reason an OSError gives, for a problem on the entry."""
    return exc.strerror or str(exc)


def read_range(path: Path | str, offset: int, limit: int) -> tuple[bytes, int]:
    """At most `limit` bytes from `offset` (offset 0: the last `limit` bytes), and where
    they start. A file shorter than `offset` (truncated) gives nothing from its end."""
    fd, _ = open_regular(path)
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


def write_private(path: Path, data: str | bytes, mode: int = PRIVATE_FILE) -> None:
    """Replace `path` atomically by a file holding `data` (text as UTF-8), with `mode` from
    its first byte: a reader sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, mode)
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
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
            raise OSError(errno.EINVAL, NOT_REGULAR, str(path))
        if stat.S_IMODE(info.st_mode) != PRIVATE_FILE:
            os.fchmod(fd, PRIVATE_FILE)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "a", encoding="utf-8")
