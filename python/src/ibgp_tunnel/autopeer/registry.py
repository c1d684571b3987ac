"""The DN42 registry's aut-num and mntner objects (the thinnest version under
the design's contract, written by the web part to test against; the auth part's
fuller one, with the whole-registry scan, replaces it)."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ibgp_tunnel.autopeer.errors import AutopeerRefused

MAX_OBJECT = 64 * 1024
_MNTNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_SSH = re.compile(r"((?:sk-)?(?:ssh|ecdsa)-[a-z0-9@.-]+) ([A-Za-z0-9+/]+={0,2})(?: .*)?")
_PGP = re.compile(r"pgp-fingerprint\s+((?:[0-9A-Fa-f]{4}\s*){10})")


@dataclass(frozen=True)
class Auth:
    kind: str  # "ssh" | "pgp"
    value: str


@dataclass(frozen=True)
class AutNum:
    asn: int
    mnt_by: list[str]


@dataclass(frozen=True)
class Mntner:
    name: str
    auths: list[Auth]
    skipped: list[str] = field(default_factory=list)


def _object(path: Path) -> dict[str, list[str]] | None:
    """One RPSL file: a regular file (never a symlink), at most MAX_OBJECT bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        raw = handle.read(MAX_OBJECT + 1)
    if len(raw) > MAX_OBJECT:
        return None
    fields: dict[str, list[str]] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        if line[:1] in ("", " ", "\t", "+") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        fields.setdefault(key.strip(), []).append(value.strip())
    return fields


def aut_num(registry_dir: Path, asn: int) -> AutNum:
    fields = _object(registry_dir / "data" / "aut-num" / f"AS{int(asn)}")
    if fields is None:
        raise AutopeerRefused(f"asn: AS{asn} is not in the DN42 registry", "asn")
    return AutNum(asn, [m for m in fields.get("mnt-by", []) if _MNTNER.fullmatch(m)])


def mntner(registry_dir: Path, name: str) -> Mntner:
    fields = _object(registry_dir / "data" / "mntner" / name) if _MNTNER.fullmatch(name) else None
    if fields is None:
        raise AutopeerRefused(f"the maintainer {name[:64]} is not in the DN42 registry", "asn")
    auths, skipped = [], []
    for value in fields.get("auth", []):
        if match := _SSH.fullmatch(value):
            auths.append(Auth("ssh", f"{match.group(1)} {match.group(2)}"))
        elif match := _PGP.fullmatch(value):
            auths.append(Auth("pgp", re.sub(r"\s", "", match.group(1)).upper()))
        else:
            skipped.append(value[:80])
    return Mntner(name, auths, skipped)
