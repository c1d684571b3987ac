"""One `keys` run per project at a time: an flock on a lock file in secrets/.

Why a lock: two runs at once each decrypt, decide and write; without it both
exit 0 and leave public keys and PSKs of different runs mixed. The second run
waits up to ``timeout`` seconds (saying so once, with the holder's pid) and then
gives up with exit 2, changing nothing: waiting forever could hang scripts
behind a run that waits for a PGP PIN, and failing at once would make two
quick runs from a Makefile fail needlessly.

The lock file is removed by its holder on release, so a project is left as it
was found. That needs care: a waiter that opened the old file may get its lock
after the unlink, so after locking we check that the path still names the
file we locked, and retry if not.

Functions:
    project_lock(directory: Path, timeout: float, on_wait: Callable[[str], None] | None)
        context manager; raises LockBusyError (exit 2)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ibgp_tunnel import checkpoint
from ibgp_tunnel.errors import InputError

LOCK_NAME = ".ibgp-tunnel-keys.lock"
POLL_SECONDS = 0.05


class LockBusyError(InputError):
    """Another run holds the project's lock (exit 2); nothing was changed."""


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode().strip()
        if text.isdigit():
            return f"pid {text}"
    return "pid unknown"


def _try_lock(path: Path) -> tuple[int | None, str]:
    """(fd, "") when locked; (None, holder) when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        return None, holder
    except BaseException:
        os.close(fd)
        raise
    try:
        current = os.stat(path)
    except FileNotFoundError:
        current = None
    mine = os.fstat(fd)
    if current is None or (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
        os.close(fd)  # the holder removed it as we waited: lock the new one
        return None, ""
    return fd, ""


@contextlib.contextmanager
def project_lock(
    directory: Path,
    timeout: float,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    path = directory / LOCK_NAME
    deadline = time.monotonic() + max(timeout, 0.0)
    told = False
    while True:
        try:
            fd, holder = _try_lock(path)
        except OSError as exc:
            raise InputError(
                f"make {directory} writable: cannot create the lock file {path} "
                f"({exc.strerror or exc})."
            ) from exc
        if fd is not None:
            break
        if not holder:
            continue
        if time.monotonic() >= deadline:
            raise LockBusyError(
                f"wait for the other `ibgp-tunnel keys` ({holder}) to finish, then run again.\n"
                f"It holds {path}; this run changed nothing."
            )
        if not told and on_wait is not None:
            on_wait(f"waiting for another `ibgp-tunnel keys` ({holder}) on {directory}")
            told = True
        time.sleep(POLL_SECONDS)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        checkpoint.reached("locked")
        yield
    finally:
        # Unlink before unlocking: a waiter then finds the path gone or new.
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
