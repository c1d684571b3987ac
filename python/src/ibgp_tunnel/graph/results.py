"""Doctor's `--json` output, read back: host -> its checks.

The files may come from other machines, so nothing in them is trusted: each
must be a regular file of reasonable size holding doctor's JSON shape, its host
a host of the plan, no host twice. Values are kept as they are; dot.py escapes
whatever reaches the picture."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ibgp_tunnel.doctor.result import Check, Status
from ibgp_tunnel.errors import InputError

MAX_BYTES = 16 * 1024 * 1024
_FIX = "give files written by `ibgp-tunnel doctor --json > HOST.json`"


def _read(path: Path) -> bytes:
    try:
        # O_NONBLOCK: a FIFO would otherwise wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}; {_FIX}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{path} is not a regular file; {_FIX}")
        if info.st_size > MAX_BYTES:
            raise InputError(f"{path} is larger than doctor's JSON ever is; {_FIX}")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None
    finally:
        os.close(fd)


def _check(path: Path, index: int, item: Any) -> Check:
    where = f"{path}: checks[{index}]"
    if not isinstance(item, dict):
        raise InputError(f"{where} is not an object; {_FIX}")
    fields = {}
    for key in ("id", "status", "summary", "evidence", "fix"):
        value = item.get(key, "")
        if not isinstance(value, str):
            raise InputError(f"{where}.{key} is not a string; {_FIX}")
        fields[key] = value
    try:
        status = Status(fields["status"])
    except ValueError:
        known = ", ".join(s.value for s in Status)
        raise InputError(f"{where}.status must be one of {known}; {_FIX}") from None
    return Check(fields["id"], status, fields["summary"], fields["evidence"], fields["fix"])


def parse(path: Path, data: bytes) -> tuple[str, list[Check]]:
    """One doctor --json document: its host and its checks."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InputError(f"{path} is not JSON; {_FIX}") from None
    except RecursionError:
        raise InputError(f"{path} nests deeper than doctor's JSON ever does; {_FIX}") from None
    if not isinstance(document, dict):
        raise InputError(f"{path} is not doctor's JSON (no object at the top); {_FIX}")
    host, checks = document.get("host"), document.get("checks")
    if not isinstance(host, str) or not isinstance(checks, list):
        raise InputError(f'{path} has no "host" and "checks" as doctor writes them; {_FIX}')
    return host, [_check(path, i, item) for i, item in enumerate(checks)]


def load(paths: Sequence[Path], hosts: Iterable[str]) -> dict[str, list[Check]]:
    """host -> checks from doctor's JSON files, one host per file, each a plan host."""
    known = set(hosts)
    found: dict[str, list[Check]] = {}
    origin: dict[str, Path] = {}
    for path in paths:
        host, checks = parse(path, _read(path))
        if host not in known:
            raise InputError(
                f"{path} is doctor's result for {host!r}, which is no host of the plan "
                f"(hosts: {', '.join(sorted(known)) or 'none'}); give the plan it was run against"
            )
        if host in found:
            raise InputError(
                f"{origin[host]} and {path} are both results for {host!r}; give one per host"
            )
        found[host], origin[host] = checks, path
    return found
