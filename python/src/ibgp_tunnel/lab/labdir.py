"""The lab's state directory: made by `up` itself, recognised by `down` by its marker.

Root runs the lab, and `--lab-dir` may name any path, so a directory is the lab's
only when `up` made it: `up` creates it fresh (mkdir, mode 0700) and writes a marker
file into it (created O_EXCL) holding a random id and the namespace prefix, and the
state file repeats the id. `down` removes nothing unless the marker is there, is a
regular file of ours, and matches the state. An existing directory is never
adopted, even an empty one: nothing proves who made it or what else expects it to
be there, and `down` would then delete it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ibgp_tunnel.lab import location
from ibgp_tunnel.lab.errors import ForeignDirError, LabError

MARKER = ".ibgp-tunnel-lab"
_MARKER_MAX_BYTES = 4096
_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Marker:
    id: str
    prefix: str


def _refuse(lab_dir: Path, why: str) -> ForeignDirError:
    return ForeignDirError(
        f"{lab_dir} {why}, so it is not a directory `ibgp-tunnel lab up` made: the lab "
        "leaves it alone. Remove it by hand if it is a lab's (check `ip netns list` and "
        "its state.json first), or give another --lab-dir"
    )


def _safe_parent(lab_dir: Path) -> None:
    """Nobody but root (or us) may rename entries of the parent: else the directory
    checked could be swapped for another before it is used. A sticky directory such
    as /tmp is fine, since there only an entry's owner may rename it."""
    parent = lab_dir.parent
    try:
        st = os.stat(parent)
    except FileNotFoundError:
        raise LabError(f"{parent} does not exist; create it, or give another --lab-dir") from None
    writable_by_others = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if st.st_uid not in (0, os.geteuid()) or (writable_by_others and not st.st_mode & stat.S_ISVTX):
        raise ForeignDirError(
            f"{parent} may be changed by users other than root, so a lab directory in it "
            "could be swapped under the lab; give a --lab-dir under /run or another "
            "root-owned directory"
        )


@contextlib.contextmanager
def _open_dir(lab_dir: Path) -> Iterator[int | None]:
    """A descriptor of `lab_dir` itself (never a symlink's target), None when absent."""
    try:
        fd = os.open(lab_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        yield None
        return
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _refuse(lab_dir, "is a symlink or not a directory") from None
        raise LabError(f"cannot open {lab_dir}: {error.strerror}") from None
    try:
        yield fd
    finally:
        os.close(fd)


def _check_dir(lab_dir: Path, fd: int) -> None:
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        raise _refuse(lab_dir, f"belongs to uid {st.st_uid}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _refuse(lab_dir, "may be written by others")


def _read_marker(lab_dir: Path, fd: int) -> Marker:
    try:
        mfd = os.open(MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    except FileNotFoundError:
        raise _refuse(lab_dir, f"holds no {MARKER} marker") from None
    except OSError as error:
        raise _refuse(lab_dir, f"has a {MARKER} that is no plain file ({error.strerror})") from None
    try:
        st = os.fstat(mfd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise _refuse(lab_dir, f"has a {MARKER} that is not a file of ours")
        raw = os.read(mfd, _MARKER_MAX_BYTES + 1)
    finally:
        os.close(mfd)
    try:
        data = json.loads(raw[:_MARKER_MAX_BYTES])
        marker = Marker(str(data["id"]), str(data["prefix"]))
    except (ValueError, TypeError, KeyError):
        raise _refuse(lab_dir, f"has a {MARKER} that is not a lab marker") from None
    if not _ID.fullmatch(marker.id) or len(raw) > _MARKER_MAX_BYTES:
        raise _refuse(lab_dir, f"has a {MARKER} that is not a lab marker")
    try:
        location.validate_prefix(marker.prefix, f"{lab_dir}/{MARKER}: prefix")
    except LabError:
        raise _refuse(lab_dir, f"has a {MARKER} that is not a lab marker") from None
    return marker


def marker_of(lab_dir: Path) -> Marker | None:
    """The marker of the lab in `lab_dir`; None when there is no such directory.
    Refuses (exit 2) a directory `up` did not make: a symlink, someone else's,
    writable by others, or without a valid marker."""
    with _open_dir(lab_dir) as fd:
        if fd is None:
            return None
        _check_dir(lab_dir, fd)
        return _read_marker(lab_dir, fd)


def create(lab_dir: Path, prefix: str) -> Marker:
    """Make the lab directory (it must not exist) and its marker."""
    _safe_parent(lab_dir)
    try:
        os.mkdir(lab_dir, 0o700)
    except FileExistsError:
        raise _refuse(
            lab_dir, "exists already (`lab up` only uses a directory it creates)"
        ) from None
    marker = Marker(secrets.token_hex(16), prefix)
    with _open_dir(lab_dir) as fd:
        if fd is None:
            raise LabError(f"{lab_dir} vanished right after `lab up` made it")
        _check_dir(lab_dir, fd)
        os.fchmod(fd, 0o700)  # mkdir's mode passed through the umask
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        mfd = os.open(MARKER, flags, 0o600, dir_fd=fd)
        with os.fdopen(mfd, "w") as out:
            out.write(json.dumps({"id": marker.id, "prefix": marker.prefix}) + "\n")
    return marker


def remove(lab_dir: Path, expected: Marker | None) -> None:
    """Delete the lab directory, after checking once more that it carries the marker
    (`expected`, when given, from the state). Symlinks inside are removed, never followed."""
    if not shutil.rmtree.avoids_symlink_attacks:
        raise LabError(f"this Python's shutil.rmtree may follow symlinks; remove {lab_dir} by hand")
    _safe_parent(lab_dir)
    found = marker_of(lab_dir)
    if found is None:
        return
    if expected is not None and found != expected:
        raise _refuse(lab_dir, f"has a {MARKER} that does not match its state.json")
    parent_fd = os.open(lab_dir.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        shutil.rmtree(lab_dir.name, dir_fd=parent_fd)
    except OSError as error:
        raise LabError(f"could not remove all of {lab_dir}: {error}") from None
    finally:
        os.close(parent_fd)
