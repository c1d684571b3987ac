"""The spool: the unprivileged web service's accepted requests, one JSON file each,
for the privileged apply unit. Everything in an entry came from a stranger; the
apply unit checks it all again (signature, the core's grammars) before use.

Entry (version 1): {"version": 1, "op": "add"|"update"|"remove", "asn": int,
"request": {...} | null, "challenge": {"id", "text"}, "signature": str,
"signature_kind": "ssh"|"pgp", "pgp_public_key": str | null, "received": iso8601}.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ibgp_tunnel.autopeer.errors import AutopeerRefused
from ibgp_tunnel.autopeer.files import NotAFile, read_regular, write_atomic

SPOOL_VERSION = 1
# An entry holds a request, a challenge text and a signature (a PGP public key at
# most a few kB): anything larger is not ours and is never read whole.
MAX_ENTRY_BYTES = 64 * 1024
SUFFIX = ".json"


class Challenge(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
    text: str = Field(min_length=1, max_length=4096)


class SpoolEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    version: Literal[1]
    op: Literal["add", "update", "remove"]
    asn: int = Field(ge=1, le=4294967295)
    request: dict[str, Any] | None
    challenge: Challenge
    signature: str = Field(min_length=1, max_length=16384)
    signature_kind: Literal["ssh", "pgp"]
    pgp_public_key: str | None = Field(default=None, max_length=32768)
    received: str

    @field_validator("received")
    @classmethod
    def _iso(cls, value: str) -> str:
        datetime.fromisoformat(value)
        return value

    def check_shape(self) -> None:
        """The op and the request agree: add/update carry one for this ASN, remove none."""
        if self.op == "remove":
            if self.request is not None:
                raise AutopeerRefused("a remove carries no request: send request = null", "request")
            return
        if self.request is None:
            raise AutopeerRefused(f"an {self.op} needs the request", "request")
        if self.request.get("asn") != self.asn:
            raise AutopeerRefused("the request's asn is not the entry's asn", "request.asn")


@dataclass(frozen=True)
class Spooled:
    """One file of the spool: its entry, or why it cannot be one."""

    path: Path
    entry: SpoolEntry | None
    problem: str = ""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_request(spool_dir: Path, entry: SpoolEntry | dict[str, Any]) -> Path:
    """Spool `entry` (checked against the model first) as a new file, atomically, 0640.
    Names sort by arrival, so the apply unit takes entries in the order they came."""
    model = entry if isinstance(entry, SpoolEntry) else parse_entry(entry)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    name = f"{stamp}-{model.asn}-{secrets.token_hex(4)}{SUFFIX}"
    return write_atomic(spool_dir / name, model.model_dump_json() + "\n", 0o640)


def parse_entry(data: Any) -> SpoolEntry:
    """A spool entry from decoded JSON; AutopeerRefused naming the first bad field."""
    try:
        model = SpoolEntry.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "entry"
        raise AutopeerRefused(f"{field}: {first['msg']}", field) from None
    model.check_shape()
    return model


def read_entry(path: Path) -> SpoolEntry:
    """One spool file: a regular file (never a symlink), at most MAX_ENTRY_BYTES, JSON."""
    try:
        raw = read_regular(path, MAX_ENTRY_BYTES)
    except NotAFile as error:
        raise AutopeerRefused(f"the entry: {error}", "entry") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise AutopeerRefused(f"the entry is not JSON: {error}", "entry") from None
    return parse_entry(data)


def read_spool(spool_dir: Path) -> list[Spooled]:
    """Every finished entry, oldest first (temp files of a write in progress start
    with a dot and are not entries yet)."""
    try:
        names = sorted(
            p.name for p in spool_dir.iterdir() if p.name.endswith(SUFFIX) and p.name[0] != "."
        )
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        path = spool_dir / name
        try:
            found.append(Spooled(path, read_entry(path)))
        except AutopeerRefused as error:
            found.append(Spooled(path, None, str(error)))
    return found
