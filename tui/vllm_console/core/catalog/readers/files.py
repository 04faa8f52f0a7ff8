"""Every file the catalog reads is opened here: without blocking, and only if it is a file.

A model folder is anyone's: `config.json` may be a FIFO (a plain `open` waits forever for a
writer), a link to `/dev/zero` (endless) or to a tty (which `open` would make our controlling
terminal). So a file is opened with `O_NONBLOCK | O_NOCTTY`, checked with `fstat` on the open
descriptor (which sees what a link points to, and cannot be swapped after the check), and
read only if it is a regular file, never past a cap chosen for what the file is.

Failures are `OSError`s whose `strerror` is a short reason for a problem on the entry;
`NOT_REGULAR` is the one for FIFOs, sockets and devices, so a caller can word it
"config.json is not a regular file".
"""

from __future__ import annotations

import errno
import os
import stat

NOT_REGULAR = "not a regular file"
TOO_LARGE = "file too large"

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
_FIRST_READ = 65536


def open_regular(path: str) -> tuple[int, os.stat_result]:
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


def read_capped(path: str, cap: int) -> bytes:
    """A whole small regular file; OSError if it is not one, or is longer than `cap`."""
    fd, _ = open_regular(path)
    try:
        return read_fd(fd, cap)
    finally:
        os.close(fd)


def read_head(path: str, size: int) -> bytes:
    """At most the first `size` bytes of a regular file (a ref, a header's start)."""
    fd, _ = open_regular(path)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def reason(exc: OSError) -> str:
    """The short reason an OSError gives, for a problem on the entry."""
    return exc.strerror or str(exc)
