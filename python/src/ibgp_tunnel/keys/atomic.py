"""Atomic file replacement: every file we write is either the old one or the new one.

A temp file in the target's own directory (so ``rename`` stays on one file
system and is atomic), written, fsynced, renamed over the target, then the
directory fsynced so the rename itself survives a crash. On any failure the
temp file is removed: no partial file and no stray ``.tmp`` is left behind.

``AtomicBatch`` stages several files first and renames them only when all were
written, so a failure while preparing the third file leaves the first two
untouched too.

(``newfile.write_new`` is the create-only sibling used by ``init``; this module
replaces files that may exist. `keys` replaces its several files through
``transaction``, whose journal also survives a killed process.)

Functions:
    write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None
    AtomicBatch().stage(path: Path, data: bytes, mode: int = 0o600) / .commit() / .discard()
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from types import TracebackType

from ibgp_tunnel.errors import IbgpTunnelError


class AtomicWriteError(IbgpTunnelError):
    """A file could not be written; the message says which and what to check."""


def _describe(path: Path, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return (
        f"cannot write {path}: {reason}; check that {path.parent} is a writable directory "
        "(the file was left unchanged)"
    )


def fsync_dir(directory: Path) -> None:
    # Durability of the rename; not every file system lets a directory be opened.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_temp(path: Path, data: bytes, mode: int) -> Path:
    """Write ``data`` to a new temp file beside ``path``; returns the temp file's path."""
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise AtomicWriteError(_describe(path, exc)) from exc
    temp = Path(name)
    try:
        # mkstemp already creates 0600; fchmod sets the requested mode before any
        # byte is written, so nothing is ever readable by others by accident.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            fd = -1  # the file object owns it now
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as exc:
        if fd >= 0:
            os.close(fd)
        temp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise AtomicWriteError(_describe(path, exc)) from exc
        raise
    return temp


def _replace(temp: Path, path: Path) -> None:
    try:
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise AtomicWriteError(_describe(path, exc)) from exc
    fsync_dir(path.parent)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically; the file gets ``mode`` (default 0600)."""
    _replace(_write_temp(path, data, mode), path)


class AtomicBatch:
    """Stage several files, then rename them all; on error nothing staged survives.

    Use as a context manager: call ``commit()`` inside the block; staged temp
    files not committed are removed on exit (also when an exception escapes).
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []

    def stage(self, path: Path, data: bytes, mode: int = 0o600) -> None:
        self._staged.append((_write_temp(path, data, mode), path))

    def commit(self) -> None:
        # Each rename is atomic on its own; if one fails the remaining temps are
        # discarded, so every target is still either wholly old or wholly new.
        try:
            while self._staged:
                temp, path = self._staged[0]
                _replace(temp, path)
                self._staged.pop(0)
        finally:
            self.discard()

    def discard(self) -> None:
        for temp, _ in self._staged:
            temp.unlink(missing_ok=True)
        self._staged.clear()

    def __enter__(self) -> AtomicBatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()
