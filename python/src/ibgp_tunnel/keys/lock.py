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

The lock file may have been planted (a cloned repository can ship a symlink
there): it is opened without following links or blocking, and used only when it
is a regular file with one link; otherwise `keys` refuses and leaves it alone.

Functions:
    project_lock(directory: Path, timeout: float, on_wait: Callable[[str], None] | None)
        context manager; raises LockBusyError, LockFileError, InputError (all exit 2)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ibgp_tunnel.errors import InputError
from ibgp_tunnel.keys import checkpoint

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


# Never through a link (a cloned repository could point it at ~/.ssh/authorized_keys),
# never blocking (a FIFO would wait for a writer), never truncating on open: the
# file is truncated only once it is known to be a regular file of its own.
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


# What open() says about a path that is no plain file.
_REFUSED = {
    errno.ELOOP: "a symbolic link",
    errno.EISDIR: "a directory",
    errno.ENXIO: "a socket",
}


class LockFileError(InputError):
    """The lock file is not a plain file `keys` may use (exit 2); nothing was changed."""


def _kind(mode: int, links: int) -> str | None:
    """What is wrong with the lock file, or None when it is a plain file."""
    if not stat.S_ISREG(mode):
        return "not a regular file (a FIFO, socket, device or directory)"
    if links != 1:
        return f"a file with {links} hard links (writing it would change the others)"
    return None


def _refuse(path: Path, what: str) -> LockFileError:
    return LockFileError(
        f"inspect and remove {path}: the lock file is {what}, so `keys` does not use it; "
        "nothing was changed."
    )


def _open(path: Path) -> int:
    try:
        fd = os.open(path, _OPEN_FLAGS, 0o600)
    except OSError as exc:
        if exc.errno in _REFUSED:
            raise _refuse(path, _REFUSED[exc.errno]) from None
        raise InputError(
            f"make {path.parent} writable: cannot create the lock file {path} "
            f"({exc.strerror or exc})."
        ) from None
    info = os.fstat(fd)
    problem = _kind(info.st_mode, info.st_nlink)
    if problem is not None:
        os.close(fd)
        raise _refuse(path, problem)
    return fd


def _try_lock(path: Path) -> tuple[int | None, str]:
    """(fd, "") when locked; (None, holder) when another process holds it."""
    fd = _open(path)
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
        current = os.lstat(path)
    except FileNotFoundError:
        current = None
    mine = os.fstat(fd)
    if current is None or (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
        os.close(fd)  # the holder removed it as we waited: lock the new one
        return None, ""
    return fd, ""


def _write_pid(fd: int, path: Path) -> None:
    """Our pid into the lock file, for a waiting run's message; exit 2 if it cannot be."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
        fix = "free space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "check"
        raise InputError(
            f"{fix} in {path.parent}: cannot write the lock file {path} "
            f"({exc.strerror or exc}); nothing was changed."
        ) from None


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
        except OSError as exc:  # flock or fstat failing on a file we could open
            raise InputError(
                f"check {path}: cannot lock it ({exc.strerror or exc}); nothing was changed."
            ) from None
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
    _write_pid(fd, path)
    try:
        checkpoint.reached("locked")
        yield
    finally:
        # Unlink before unlocking: a waiter then finds the path gone or new.
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
