"""Create a new file atomically and never over an existing one (used by `init`).

The file appears complete or not at all: temp file in the same directory, then a
hard link to the final name, which fails if that name exists.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from ibgp_tunnel.errors import InputError


def _temp_with(path: Path, data: bytes, mode: int) -> Path:
    # Same directory as the target so the final link/rename stays on one filesystem.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return Path(name)


def write_new(path: Path, text: str, mode: int = 0o644) -> None:
    """Create `path` with `text`; InputError if it already exists (never overwrites).

    A hard link publishes the temp file only if the name is still free, so a file
    created meanwhile by someone else is not clobbered either.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = _temp_with(path, text.encode("utf-8"), mode)
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror or error}.") from error
    try:
        _publish_new(temp, path)
    except FileExistsError:
        raise InputError(f"{path} already exists; not overwriting it.") from None
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror or error}.") from error
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)


# What link(2) answers on a file system that has no hard links (or no more).
_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK)


def hard_link(source: Path, name: Path) -> bool:
    """Give ``source`` the new name ``name`` (FileExistsError if it is taken);
    False, with nothing done, where the file system has no hard links, so the
    caller picks its own fallback. `keys` backs files up with it too."""
    try:
        os.link(source, name)
    except OSError as error:
        if error.errno not in _NO_HARD_LINKS:
            raise
        return False
    return True


def _publish_new(temp: Path, path: Path) -> None:
    if hard_link(temp, path):
        return
    # No hard links: fall back to check-then-rename.
    if path.exists():
        raise FileExistsError(errno.EEXIST, "exists", str(path))
    os.replace(temp, path)
