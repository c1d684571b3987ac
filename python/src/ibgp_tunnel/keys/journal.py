"""The journal of a `keys` transaction, and the rule for trusting one found on disk.

`transaction` writes the journal; the next run reads it to finish or undo a
killed run, and acting on it moves, replaces and deletes files. A cloned
repository can ship a journal, so one is acted on only if `keys` could have
written it for this project, and otherwise refused and left in place:

- it is a regular file (opened without following a link or blocking), small,
  JSON with exactly the fields and types written below;
- every target is a real path (no symlink in any component, no ``..``): a file
  inside the secrets directory, or a file this run writes itself (the plan);
- every temp and backup is the name `transaction` derives from its target and
  the run's id, beside it, and a regular file if it exists.

Functions:
    read_journal(journal: Path, home: Path, targets: Collection[Path])
        -> tuple[str, list[Entry]]; raises UntrustedJournalError (exit 2)
    inside(directory: Path, path: Path | str) -> bool
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Collection
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ibgp_tunnel.errors import InputError

JOURNAL_NAME = ".ibgp-tunnel-keys.journal"
TAG = "ibgp-tunnel"
STATES = ("prepare", "commit")
MAX_BYTES = 1 << 20  # a journal names a few files; a bigger one is not ours
MAX_ENTRIES = 10_000

_SHA256 = re.compile(r"[0-9a-f]{64}")
_TXID = re.compile(r"[0-9a-f]{8}")


@dataclass(frozen=True)
class Entry:
    target: str  # the real file (symlinks resolved)
    temp: str
    backup: str | None  # None: the target did not exist before
    sha256: str  # of the new content
    old_sha256: str | None  # of the target before the run (None: it did not exist)
    mode: int


_FIELDS = {f.name for f in fields(Entry)}


class UntrustedJournalError(InputError):
    """A journal `keys` did not write (exit 2); it was left in place, nothing was touched."""


class _Bad(Exception):
    """Why a journal is not one `keys` wrote (internal)."""


def inside(directory: Path, path: Path | str) -> bool:
    """Whether ``path`` is below ``directory`` (both absolute and normalised)."""
    try:
        return Path(path).relative_to(directory).parts != ()
    except ValueError:
        return False


def _read(journal: Path) -> bytes:
    try:
        fd = os.open(journal, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Bad("it is a symbolic link") from None
        raise _Bad(f"it cannot be read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Bad("it is not a regular file")
        if info.st_size > MAX_BYTES:
            raise _Bad(f"it is larger than {MAX_BYTES} bytes")
        return os.read(fd, MAX_BYTES + 1)
    except OSError as exc:
        raise _Bad(f"it cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or "\0" in value:
        raise _Bad(f"{key} must be a string")
    return value


def _text_or_none(raw: dict[str, Any], key: str) -> str | None:
    return None if raw[key] is None else _text(raw, key)


def _digest(value: str | None, key: str) -> str | None:
    if value is not None and not _SHA256.fullmatch(value):
        raise _Bad(f"{key} {value!r} is not a SHA-256 digest")
    return value


def _regular_or_absent(path: str, what: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _Bad(f"its {what} {path} cannot be looked at: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise _Bad(f"its {what} {path} is not a regular file")


def _target(raw: dict[str, Any], home: Path, targets: Collection[Path]) -> str:
    target = _text(raw, "target")
    # realpath of a real path is itself: no symlink in any component, no "..",
    # no "//" or "/./", absolute.
    if not os.path.isabs(target) or os.path.realpath(target) != target:
        raise _Bad(f"the target {target!r} is not a real path (a symlink or '..' on the way)")
    in_home = inside(home, target) and not Path(target).name.startswith(".")
    if not in_home and Path(target) not in targets:
        raise _Bad(f"the target {target} is outside {home} and not a file this run writes")
    _regular_or_absent(target, "target")
    return target


def _entry(raw: Any, home: Path, targets: Collection[Path]) -> tuple[Entry, str]:
    if not isinstance(raw, dict) or set(raw) != _FIELDS:
        raise _Bad(f"an entry must be a table of {', '.join(sorted(_FIELDS))}")
    target = _target(raw, home, targets)
    temp = _text(raw, "temp")
    backup = _text_or_none(raw, "backup")
    stem = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.{TAG}-")
    txid = temp[len(stem) : -len(".tmp")] if temp.startswith(stem) else ""
    if not (_TXID.fullmatch(txid) and temp == f"{stem}{txid}.tmp"):
        raise _Bad(f"the temp file {temp!r} is not the one `keys` names beside {target}")
    if backup is not None and backup != f"{stem}{txid}.old":
        raise _Bad(f"the backup {backup!r} is not the one `keys` names beside {target}")
    _regular_or_absent(temp, "temp file")
    if backup is not None:
        _regular_or_absent(backup, "backup")
    mode = raw["mode"]
    if type(mode) is not int or not 0 <= mode <= 0o777:
        raise _Bad(f"the mode {mode!r} is not a file mode")
    entry = Entry(
        target=target,
        temp=temp,
        backup=backup,
        sha256=_digest(_text(raw, "sha256"), "sha256") or "",
        old_sha256=_digest(_text_or_none(raw, "old_sha256"), "old_sha256"),
        mode=mode,
    )
    return entry, txid


def _parse(data: bytes, home: Path, targets: Collection[Path]) -> tuple[str, list[Entry]]:
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Bad("it is not JSON") from None
    if not isinstance(body, dict) or set(body) != {"state", "pid", "entries"}:
        raise _Bad("it must be a table of state, pid and entries")
    state, pid, raw_entries = body["state"], body["pid"], body["entries"]
    if state not in STATES:
        raise _Bad(f"the state {state!r} is neither prepare nor commit")
    if type(pid) is not int or pid <= 0:
        raise _Bad(f"the pid {pid!r} is not a process id")
    if not isinstance(raw_entries, list) or not 0 < len(raw_entries) <= MAX_ENTRIES:
        raise _Bad("its entries must be a non-empty list")
    parsed = [_entry(raw, home, targets) for raw in raw_entries]
    if len({txid for _, txid in parsed}) != 1:
        raise _Bad("its temp files belong to different runs")
    entries = [entry for entry, _ in parsed]
    if len({entry.target for entry in entries}) != len(entries):
        raise _Bad("it names a target twice")
    return state, entries


def read_journal(journal: Path, home: Path, targets: Collection[Path]) -> tuple[str, list[Entry]]:
    """The state and entries of ``journal`` if `keys` could have written it.

    ``home`` is the real secrets directory, ``targets`` the real paths of the
    files this run writes (the plan among them). Anything else: UntrustedJournalError, and the
    journal and every file it names are left as they are.
    """
    try:
        return _parse(_read(journal), home, targets)
    except _Bad as why:
        raise UntrustedJournalError(
            f"inspect {journal} and remove it, then run again: it is not a journal `keys` "
            f"wrote ({why}).\nNothing was moved or deleted."
        ) from None
