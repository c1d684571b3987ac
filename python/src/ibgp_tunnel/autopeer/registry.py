"""DN42's registry (a checkout: `data/aut-num`, `data/mntner`, `data/route`, ...)
read as RPSL objects. It is data thousands of strangers wrote: a file is read only
if it is a regular file inside its directory (never through a symlink), at most
MAX_OBJECT_BYTES long and free of NUL bytes; anything else is skipped with a reason,
never raised. Who holds an ASN: its aut-num's `mnt-by` maintainers and their
`auth:` lines (autopeer/auth.py reads those)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ibgp_tunnel.autopeer.auth import Auth, auth_category, parse_auth
from ibgp_tunnel.autopeer.errors import AutopeerRefused
from ibgp_tunnel.autopeer.files import NotAFile, read_regular

# The largest real object (2023's snapshot) is about 12 KB; four times that
# holds any honest maintainer and stops a planted file from filling memory.
MAX_OBJECT_BYTES = 64 * 1024
ASN_MAX = 2**32 - 1
# Maintainer names as the registry's schema spells them (files are upper case).
MNTNER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

Fields = dict[str, list[str]]


@dataclass(frozen=True)
class AutNum:
    asn: int
    mnt_by: list[str]


@dataclass(frozen=True)
class Mntner:
    name: str
    auths: list[Auth]
    # One reason per `auth:` line that is not a key we can verify against.
    skipped: list[str] = field(default_factory=list)


def parse_rpsl(text: str) -> Fields:
    """One RPSL object: `key: value` lines at column 0; a line starting with a
    space, a tab or `+` continues the previous value (joined by a space); other
    lines (comments, blank, no colon) are ignored."""
    fields: Fields = {}
    last: list[str] | None = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t", "+"):
            if last is not None and line[1:].strip():
                last[-1] = f"{last[-1]} {line[1:].strip()}".strip()
            continue
        if not line or line.startswith(("#", "%")) or ":" not in line:
            last = None
            continue
        key, value = line.split(":", 1)
        last = fields.setdefault(key.strip(), [])
        last.append(value.strip())
    return fields


def read_object(path: Path) -> str:
    """An object file's text, or ObjectSkipped with the reason: not a regular
    file (a symlink is never followed), too large, NUL bytes."""
    try:
        data = read_regular(path, MAX_OBJECT_BYTES)
    except NotAFile as error:
        raise ObjectSkipped(str(error)) from None
    if b"\0" in data:
        raise ObjectSkipped("NUL bytes: not a text object")
    return data.decode("utf-8", errors="replace")


class ObjectSkipped(Exception):
    """An object (file) left out; str() is the reason."""


def object_dir(root: Path, kind: str) -> Path:
    """`data/<kind>` of a registry checkout (`root` holds `data/`, or is `data/`),
    refused if it is a symlink or leads out of the checkout."""
    base = Path(root).resolve()
    data = base if (base / kind).is_dir() and not (base / "data").is_dir() else base / "data"
    directory = data / kind
    if directory.is_symlink() or data.is_symlink():
        raise ObjectSkipped(f"data/{kind} is a symlink")
    if not directory.is_dir():
        raise ObjectSkipped(f"data/{kind} is missing")
    if not directory.resolve().is_relative_to(base):
        raise ObjectSkipped(f"data/{kind} leads out of the checkout")
    return directory


def object_file(root: Path, kind: str, name: str) -> Fields:
    """The named object of a kind, parsed; ObjectSkipped if absent or unreadable."""
    if name in (".", "..") or "/" in name or "\0" in name:
        raise ObjectSkipped(f"{name[:40]!r} is not an object name")
    return parse_rpsl(read_object(object_dir(root, kind) / name))


def registry_objects(directory: Path) -> Iterator[Fields]:
    """Each readable RPSL object of one object directory (e.g. `data/route`), in
    file-name order; unreadable files (symlinks, huge, NUL bytes) are left out."""
    for _, found in scan_objects(directory):
        if not isinstance(found, str):
            yield found


def scan_objects(directory: Path) -> Iterator[tuple[str, Fields | str]]:
    """(file name, fields or the reason it was skipped) for every entry of an
    object directory, in file-name order."""
    for path in sorted(Path(directory).iterdir()):
        try:
            yield path.name, parse_rpsl(read_object(path))
        except ObjectSkipped as reason:
            yield path.name, str(reason)


def aut_num_of(name: str, fields: Fields) -> AutNum | str:
    """An aut-num object's ASN and maintainers, or why it is skipped."""
    values = fields.get("aut-num", [])
    if len(values) != 1:
        return f"{len(values)} `aut-num:` lines, not one"
    match = re.fullmatch(r"AS([0-9]{1,10})", values[0], re.IGNORECASE)
    if match is None or not 0 < int(match.group(1)) <= ASN_MAX:
        return "`aut-num:` is not AS<number> (1 to 2^32-1)"
    if name and name.upper() != values[0].upper():
        return "`aut-num:` differs from the file name"
    maintainers = [value for value in fields.get("mnt-by", []) if MNTNER_NAME.fullmatch(value)]
    if not maintainers:
        return "`mnt-by:` names no maintainer"
    return AutNum(int(match.group(1)), maintainers)


def mntner_of(name: str, fields: Fields) -> Mntner | str:
    """A mntner object's usable auths (and a reason per skipped `auth:` line),
    or why the whole object is skipped."""
    values = fields.get("mntner", [])
    if len(values) != 1 or not MNTNER_NAME.fullmatch(values[0]):
        return "not one `mntner:` name"
    if name and name.upper() != values[0].upper():
        return "`mntner:` differs from the file name"
    auths: list[Auth] = []
    skipped: list[str] = []
    for number, value in enumerate(fields.get("auth", []), 1):
        found = parse_auth(value)
        if isinstance(found, Auth):
            auths.append(found)
        else:
            skipped.append(f"auth line {number}: {found}")
    return Mntner(values[0], auths, skipped)


def aut_num(registry_dir: Path, asn: int) -> AutNum:
    """Who maintains an ASN, from its aut-num object; AutopeerRefused (field
    `asn`) when the registry has no usable object for it."""
    if isinstance(asn, bool) or not isinstance(asn, int) or not 0 < asn <= ASN_MAX:
        raise AutopeerRefused("asn: give the AS number as an integer (e.g. 4242420000)", "asn")
    try:
        fields = object_file(registry_dir, "aut-num", f"AS{asn}")
    except ObjectSkipped as reason:
        raise AutopeerRefused(
            f"asn: AS{asn} has no usable aut-num object in the DN42 registry ({reason}); "
            "register it first or wait for the registry refresh",
            "asn",
        ) from None
    found = aut_num_of(f"AS{asn}", fields)
    if isinstance(found, str):
        raise AutopeerRefused(f"asn: AS{asn}'s aut-num object is skipped ({found})", "asn")
    return found


def mntner(registry_dir: Path, name: str) -> Mntner:
    """A maintainer and its auths; ObjectSkipped (with the reason) when the
    registry has no usable object of that name."""
    if not MNTNER_NAME.fullmatch(name):
        raise ObjectSkipped(f"{name[:40]!r} is not a maintainer name")
    try:
        fields = object_file(registry_dir, "mntner", name)
    except ObjectSkipped:
        if name == name.upper():
            raise
        fields = object_file(registry_dir, "mntner", name.upper())
    found = mntner_of(name.upper(), fields)
    if isinstance(found, str):
        raise ObjectSkipped(found)
    return found


@dataclass
class RegistryScan:
    """What a whole registry holds for authentication: objects parsed per kind,
    objects skipped per reason, auth lines parsed per kind and skipped per reason."""

    objects: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    auths: Counter[str] = field(default_factory=Counter)
    auths_skipped: Counter[str] = field(default_factory=Counter)
    # aut-num objects whose `mnt-by` names no usable maintainer
    unmaintained: int = 0

    def summary(self) -> str:
        lines = [f"parsed {kind}: {count}" for kind, count in sorted(self.objects.items())]
        lines += [f"skipped object ({why}): {n}" for why, n in self.skipped.most_common()]
        lines += [f"auth {kind}: {count}" for kind, count in sorted(self.auths.items())]
        lines += [f"skipped auth ({why}): {n}" for why, n in self.auths_skipped.most_common()]
        lines.append(f"aut-num without a usable maintainer: {self.unmaintained}")
        return "\n".join(lines)


def scan_registry(registry_dir: Path) -> RegistryScan:
    """Every aut-num and mntner object of a registry, parsed or skipped with a
    reason (the counts say which); nothing in the data raises."""
    scan = RegistryScan()
    maintainers: dict[str, Mntner] = {}
    for name, found in scan_objects(object_dir(registry_dir, "mntner")):
        held = found if isinstance(found, str) else mntner_of(name, found)
        if isinstance(held, str):
            scan.skipped[f"mntner {held}"] += 1
            continue
        scan.objects["mntner"] += 1
        maintainers[held.name.upper()] = held
        for auth in held.auths:
            scan.auths[auth.kind] += 1
        for reason in held.skipped:
            scan.auths_skipped[auth_category(reason.split(": ", 1)[1])] += 1
    for name, found in scan_objects(object_dir(registry_dir, "aut-num")):
        autnum = found if isinstance(found, str) else aut_num_of(name, found)
        if isinstance(autnum, str):
            scan.skipped[f"aut-num {autnum}"] += 1
            continue
        scan.objects["aut-num"] += 1
        if not any(maintainers.get(m.upper(), Mntner(m, [])).auths for m in autnum.mnt_by):
            scan.unmaintained += 1
    return scan
