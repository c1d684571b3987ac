"""Reading the config file BIRD runs from.

Doctor may run as root, and the path may come from a lab's state or the command
line: the file is opened without blocking (a FIFO planted there must not hang
doctor), must be a regular file of bounded size and UTF-8 text, and its
passwords are hidden before anything keeps it. Symlinks are followed on purpose:
NixOS's /etc/bird/bird.conf is one, into the Nix store.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass

from ibgp_tunnel.doctor.parse_drift import hide_passwords

# Far above any real bird.conf (a full DN42 ROA table included is a few MB).
MAX_CONFIG_BYTES = 16 << 20


@dataclass(frozen=True)
class FileRead:
    text: str | None  # None: not read, `error` says why
    error: str = ""
    mtime: float = 0.0
    read_at: float = 0.0


def _failed(why: str) -> FileRead:
    return FileRead(None, why)


def read_config(path: str) -> FileRead:
    """The file's text (passwords hidden), its modification time and when it was read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        return _failed(f"{path}: {error.strerror}")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return _failed(f"{path} is not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            return _failed(f"{path} is larger than {MAX_CONFIG_BYTES >> 20} MiB")
        chunks, size = [], 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_CONFIG_BYTES:  # it grew while doctor read it
            return _failed(f"{path} is larger than {MAX_CONFIG_BYTES >> 20} MiB")
    except OSError as error:
        return _failed(f"{path}: {error.strerror}")
    finally:
        os.close(fd)
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        return _failed(f"{path} is not UTF-8 text")
    return FileRead(hide_passwords(text), "", info.st_mtime, time.time())
