"""Replace several files all or none, across crashes: temps, a journal, renames.

A `keys` rotation changes secrets/<host>.yaml of both ends of a link and the
plan's public keys; a run killed between two renames used to leave them
inconsistent. Now:

1. a journal (``.ibgp-tunnel-keys.journal`` beside the lock) names every target,
   its temp file and its backup, state ``prepare``;
2. each new content goes to a temp file beside its target (fsynced); each
   existing target gets a backup (a hard link, so no bytes are copied);
3. the journal is rewritten with the temps' SHA-256, state ``commit``: from
   here on the new files are the truth;
4. temps are renamed over their targets, then backups and the journal removed.

``recover`` (run by the next `keys`, under the lock) looks at a left-over journal:
``prepare`` → roll back (remove temps and backups, nothing was replaced);
``commit`` with every temp complete or already renamed → roll forward; a commit
whose temps were lost → roll back from the backups. It also removes temp files
that killed runs left beside the targets (and that no journal names). A journal
`keys` cannot have written (a cloned repository may ship one) is refused and
left in place, before anything is moved or deleted (``journal``).

Symlinks are written through: the temp goes beside the symlink's target and is
renamed over it, so the link stays a link and its target gets the new content
(replacing the link by a regular file would leave the target, which is what the
user pointed at and may be shared, with the old key). A file marked
``confined`` (every secrets file) must land inside the journal's directory.

Every file and the journal are written with O_EXCL temps, fsync and a directory
fsync, so each step survives a power loss as well as a kill.

Functions:
    replace_all(journal_dir: Path, files: Sequence[NewFile]) -> None
    recover(journal_dir: Path, targets: Iterable[Path]) -> str | None
    real_target(path: Path) -> Path
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ibgp_tunnel.errors import EXIT_BAD_INPUT, InputError
from ibgp_tunnel.keys import checkpoint
from ibgp_tunnel.keys.atomic import AtomicWriteError, fsync_dir
from ibgp_tunnel.keys.journal import (
    JOURNAL_NAME,
    TAG,
    Entry,
    inside,
    read_journal,
)
from ibgp_tunnel.newfile import hard_link


class RecoveryError(InputError):
    """A left-over journal that can be neither finished nor rolled back (exit 2)."""


class DiskFullError(AtomicWriteError):
    """No space left for a new file (exit 2): every file is as it was."""

    exit_code = EXIT_BAD_INPUT


@dataclass(frozen=True)
class NewFile:
    path: Path  # as the user names it (may be a symlink)
    data: bytes
    mode: int = 0o600
    # Must land inside the journal's directory (secrets/); False only for the
    # plan, the one file the user names on the command line.
    confined: bool = True


def real_target(path: Path) -> Path:
    """Where writing ``path`` really lands: symlinks followed, directory resolved."""
    if not path.is_symlink():
        return path.parent.resolve() / path.name
    try:
        return Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:
        # A dangling link: its target is created, if that directory exists.
        real = Path(os.path.realpath(path))
        if not real.parent.is_dir():
            raise InputError(
                f"point {path} at an existing directory or remove the link: its "
                f"target {real} is in a directory that does not exist."
            ) from None
        return real
    except OSError as exc:
        raise InputError(
            f"fix the symlink {path}: it cannot be followed ({exc.strerror or exc})."
        ) from exc


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            fd = -1
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def _write_journal(journal_dir: Path, state: str, entries: Sequence[Entry], txid: str) -> None:
    journal = journal_dir / JOURNAL_NAME
    temp = journal_dir / f"{JOURNAL_NAME}.{TAG}-{txid}-{state}.tmp"
    body = {"state": state, "pid": os.getpid(), "entries": [asdict(e) for e in entries]}
    _write_new(temp, json.dumps(body, indent=1).encode(), 0o600)
    os.replace(temp, journal)
    fsync_dir(journal_dir)


def _remove(path: str | None) -> None:
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _backup(target: Path, backup: Path) -> None:
    if not hard_link(target, backup):
        shutil.copy2(target, backup)  # file systems without hard links


def _roll_back(entries: Sequence[Entry]) -> None:
    """Put back, from its backup, every target already replaced; remove temps and backups."""
    for entry in entries:
        if _sha256(Path(entry.target)) == entry.sha256:
            if entry.backup is None:
                os.unlink(entry.target)  # it did not exist before this run
            elif os.path.exists(entry.backup):
                os.replace(entry.backup, entry.target)
        _remove(entry.temp)
        _remove(entry.backup)
        fsync_dir(Path(entry.target).parent)


def replace_all(journal_dir: Path, files: Sequence[NewFile]) -> None:
    """Replace every file in ``files``, or (on error, now or at the next recover) none."""
    if not files:
        return
    txid = secrets.token_hex(4)
    entries = []
    seen: dict[Path, Path] = {}
    home = journal_dir.resolve()
    for new in files:
        target = real_target(new.path)
        if new.confined and not inside(home, target):
            raise InputError(
                f"make {new.path} a file inside {home}: it leads to {target}, outside it; "
                "no file was changed."
            )
        if target in seen:
            raise InputError(
                f"make {seen[target]} and {new.path} separate files: both lead to {target}, "
                "so one would overwrite the other; no file was changed."
            )
        seen[target] = new.path
        stem = target.parent / f".{target.name}.{TAG}-{txid}"
        entries.append(
            Entry(
                target=str(target),
                temp=f"{stem}.tmp",
                backup=f"{stem}.old" if target.exists() else None,
                sha256=hashlib.sha256(new.data).hexdigest(),
                old_sha256=_sha256(target),
                mode=new.mode,
            )
        )
    journal = journal_dir / JOURNAL_NAME
    writing = str(journal)
    try:
        _write_journal(journal_dir, "prepare", entries, txid)
        for entry, new in zip(entries, files, strict=True):
            writing = entry.target
            _write_new(Path(entry.temp), new.data, entry.mode)
            if entry.backup is not None:
                _backup(Path(entry.target), Path(entry.backup))
        for directory in {Path(e.target).parent for e in entries}:
            fsync_dir(directory)
        checkpoint.reached("staged")
        writing = str(journal)
        _write_journal(journal_dir, "commit", entries, txid)
    except OSError as exc:
        for entry in entries:
            _remove(entry.temp)
            _remove(entry.backup)
        _remove(str(journal))
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                f"free space on the file system of {Path(writing).parent}: cannot write "
                f"{writing} ({exc.strerror}); no file was changed."
            ) from None
        raise AtomicWriteError(
            f"check that {Path(writing).parent} is a writable directory: cannot write "
            f"{writing} ({exc.strerror or exc}); no file was changed."
        ) from exc
    checkpoint.reached("committed")
    for number, entry in enumerate(entries, start=1):
        try:
            os.replace(entry.temp, entry.target)
        except OSError as exc:
            try:
                _roll_back(entries)
            except OSError:
                raise AtomicWriteError(
                    f"run `ibgp-tunnel keys` again to finish: replacing {entry.target} failed "
                    f"({exc.strerror or exc}) and so did undoing the files before it."
                ) from exc
            _remove(str(journal))
            raise AtomicWriteError(
                f"check that {entry.target} is a regular file in a writable directory: "
                f"cannot replace it ({exc.strerror or exc}); no file was changed."
            ) from exc
        fsync_dir(Path(entry.target).parent)
        checkpoint.reached(f"renamed-{number}")
    for entry in entries:
        _remove(entry.backup)
    _remove(str(journal))
    fsync_dir(journal_dir)


def _finish_or_undo(journal: Path, targets: Collection[Path]) -> str:
    state, entries = read_journal(journal, journal.parent.resolve(), targets)
    replaced = [e for e in entries if _sha256(Path(e.target)) == e.sha256]
    pending = [e for e in entries if e not in replaced]
    # A target someone changed after the run (an edited plan, a file re-encrypted
    # by hand) is not overwritten: the rerun derives what it needs from the rest.
    changed = [e for e in pending if _sha256(Path(e.target)) != e.old_sha256]
    to_rename = [e for e in pending if e not in changed]
    if state == "commit" and all(_sha256(Path(e.temp)) == e.sha256 for e in to_rename):
        for entry in to_rename:
            os.replace(entry.temp, entry.target)
            fsync_dir(Path(entry.target).parent)
        for entry in entries:
            _remove(entry.backup)
            _remove(entry.temp)
        _remove(str(journal))
        kept = f"; kept {', '.join(e.target for e in changed)}, changed since" if changed else ""
        return (
            f"finished an interrupted run: {len(to_rename)} of its {len(entries)} new files "
            f"were still to be renamed, now they are in place{kept}"
        )
    lost = [e.target for e in replaced if e.backup is not None and not os.path.exists(e.backup)]
    if lost:
        raise RecoveryError(
            f"restore {', '.join(lost)} from version control, then remove {journal}: an "
            "interrupted run lost the new content of some files and the old of these."
        )
    _roll_back(entries)
    _remove(str(journal))
    return (
        f"rolled back an interrupted run: it had replaced {len(replaced)} of {len(entries)} "
        "files; every file is as it was before it"
    )


def _stale(directory: Path, name: str) -> list[Path]:
    return [
        *directory.glob(f".{name}.*.tmp"),
        *directory.glob(f".{name}.{TAG}-*.old"),
    ]


def recover(journal_dir: Path, targets: Iterable[Path]) -> str | None:
    """Finish or undo what a killed run left; remove its temp files. Call under the lock.

    Returns what was done, for the user, or None when there was nothing to do.
    """
    done: list[str] = []
    journal = journal_dir / JOURNAL_NAME
    real = [real_target(path) for path in targets]
    try:
        if os.path.lexists(journal):  # a symlink too: it is refused, not ignored
            done.append(_finish_or_undo(journal, set(real)))
        stale = [*journal_dir.glob(f"{JOURNAL_NAME}.{TAG}-*.tmp")]
        for target in real:
            stale += _stale(target.parent, target.name)
        for path in stale:
            _remove(str(path))
    except OSError as exc:
        raise RecoveryError(
            f"check the permissions in {journal_dir} and beside the plan, then run again: "
            f"finishing an interrupted run failed ({exc.strerror or exc}: {exc.filename})."
        ) from exc
    if stale:
        done.append(f"removed {len(stale)} temp file(s) a killed run had left")
    return "; ".join(done) or None
