"""Whole files of the autopeer state and the registry copy. Writes: a temp file in
the same directory, fsync, rename, so a reader (the web service, a restore after
a crash) sees the old file or the new one, never half of one. Reads: bounded,
of regular files only."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: str, mode: int = 0o640) -> Path:
    """Replace `path` with `data` (mode `mode`), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return path


class NotAFile(Exception):
    """A state or registry file left unread; str() is the reason."""


def read_regular(path: Path, limit: int) -> bytes:
    """A regular file's bytes, at most `limit`: never through a symlink, never
    blocking on a FIFO or a device planted where a file was expected."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise NotAFile(f"unreadable: {error.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotAFile("not a regular file")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise NotAFile(f"too large: larger than {limit} bytes")
    return data
