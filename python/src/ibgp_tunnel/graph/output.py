"""Writing the picture: whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ibgp_tunnel.errors import InputError


def write_atomically(path: Path, content: str) -> None:
    """`content` into `path` through a temporary file beside it: a reader sees the old
    file or the new one, never half of one; a symlink at `path` is replaced, not followed."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory; create it first or write elsewhere")
    if path.is_dir():
        raise InputError(f"{path} is a directory; give a file name such as {path}/plan.svg")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise InputError(f"cannot write in {directory}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {error.strerror or error}") from None
