"""One-time challenges a requester signs: bound to the ASN, the operation and the
request (its digest), expiring, and single use. A challenge is a file
`<id>.json` in the store's directory; consuming it renames it to `<id>.used`
first, so of two racing submissions exactly one wins (rename is atomic), and
only then checks it. A challenge submitted for anything else is burned too.

The text to sign names everything it is bound to, so a signature over it is
useless anywhere else (another service, host, ASN, operation or request)."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ibgp_tunnel.autopeer.errors import AutopeerRefused
from ibgp_tunnel.autopeer.registry import ASN_MAX

SERVICE = "ibgp-tunnel dn42 autopeer"
OPS = ("add", "update", "remove")
ID = re.compile(r"[0-9a-f]{32}")
DIGEST = re.compile(r"[0-9a-f]{64}")
HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
# Used markers outlive their challenge by this long, then go (an expired id is
# refused as unknown after that, which is as good).
KEEP_USED = 3600
MAX_TTL = 86400


@dataclass(frozen=True)
class Challenge:
    id: str
    text: str
    expires: int  # unix seconds
    asn: int = 0
    op: str = ""
    request_digest: str = ""

    @property
    def expires_iso(self) -> str:
        return iso(self.expires)


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def challenge_text(host: str, asn: int, op: str, digest: str, nonce: str, expires: int) -> str:
    """The text the requester signs (plain ASCII, one `key: value` per line)."""
    return (
        f"{SERVICE} challenge\n"
        f"host: {host}\n"
        f"asn: AS{asn}\n"
        f"op: {op}\n"
        f"request: sha256:{digest}\n"
        f"nonce: {nonce}\n"
        f"expires: {iso(expires)}\n"
    )


def parse_challenge_text(text: str) -> dict[str, str]:
    """A challenge text's fields (host, asn, op, request, nonce, expires), so the
    privileged side can check what a spooled signature was bound to;
    AutopeerRefused (field `challenge`) when it is not one we write."""
    lines = text.split("\n")
    keys = ("host", "asn", "op", "request", "nonce", "expires")
    if len(lines) != len(keys) + 2 or lines[0] != f"{SERVICE} challenge" or lines[-1]:
        raise AutopeerRefused("challenge: not a challenge text this service wrote", "challenge")
    fields = {}
    for key, line in zip(keys, lines[1:-1], strict=True):
        name, _, value = line.partition(": ")
        if name != key:
            raise AutopeerRefused("challenge: not a challenge text this service wrote", "challenge")
        fields[key] = value
    return fields


def check_binding(asn: int, op: str, request_digest: str) -> None:
    if isinstance(asn, bool) or not isinstance(asn, int) or not 0 < asn <= ASN_MAX:
        raise AutopeerRefused("asn: give the AS number as an integer (e.g. 4242420000)", "asn")
    if op not in OPS:
        raise AutopeerRefused(f"op: use one of {', '.join(OPS)}", "op")
    if not isinstance(request_digest, str) or not DIGEST.fullmatch(request_digest):
        raise AutopeerRefused("request: the digest is not 64 lower-case hex digits", "request")


class ChallengeStore:
    """Challenges of one service in one directory (the web service's own)."""

    def __init__(self, directory: Path, host: str | None = None) -> None:
        self.directory = Path(directory)
        name = host or socket.gethostname()
        if not HOST.fullmatch(name):
            raise ValueError(f"host {name[:60]!r} is not a host name")
        self.host = name

    def issue(
        self, asn: int, op: str, request_digest: str, now: float | None = None, ttl: int = 300
    ) -> Challenge:
        check_binding(asn, op, request_digest)
        if not 0 < ttl <= MAX_TTL:
            raise ValueError(f"challenge ttl {ttl} is not 1 to {MAX_TTL} seconds")
        now = time.time() if now is None else now
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.prune(now)
        cid, nonce = secrets.token_hex(16), secrets.token_hex(16)
        expires = int(now) + ttl
        text = challenge_text(self.host, asn, op, request_digest, nonce, expires)
        record = {
            "asn": asn,
            "op": op,
            "request_digest": request_digest,
            "expires": expires,
            "text": text,
        }
        tmp = self.directory / f".{cid}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
        os.rename(tmp, self.directory / f"{cid}.json")
        return Challenge(cid, text, expires, asn, op, request_digest)

    def consume(
        self, id: str, asn: int, op: str, request_digest: str, now: float | None = None
    ) -> Challenge:
        """The challenge, used up; AutopeerRefused (field `challenge_id`) if it is
        unknown, used, expired, or was issued for another ASN, op or request."""
        now = time.time() if now is None else now
        if not isinstance(id, str) or not ID.fullmatch(id):
            raise AutopeerRefused(
                "challenge_id: unknown challenge; request a new one", "challenge_id"
            )
        live, used = self.directory / f"{id}.json", self.directory / f"{id}.used"
        try:
            os.rename(live, used)
        except FileNotFoundError:
            if used.exists():
                raise AutopeerRefused(
                    "challenge_id: this challenge was already used; request a new one",
                    "challenge_id",
                ) from None
            raise AutopeerRefused(
                "challenge_id: unknown or expired challenge; request a new one", "challenge_id"
            ) from None
        record = json.loads(used.read_text())
        found = Challenge(
            id,
            record["text"],
            record["expires"],
            record["asn"],
            record["op"],
            record["request_digest"],
        )
        if now > found.expires:
            raise AutopeerRefused(
                "challenge_id: the challenge expired; request a new one", "challenge_id"
            )
        if found.asn != asn:
            raise AutopeerRefused(
                f"challenge_id: the challenge was issued for AS{found.asn}, not this ASN; "
                "request one for your ASN",
                "challenge_id",
            )
        if found.op != op:
            raise AutopeerRefused(
                f"challenge_id: the challenge was issued for op {found.op}; request one for {op}",
                "challenge_id",
            )
        if found.request_digest != request_digest:
            raise AutopeerRefused(
                "challenge_id: the challenge was issued for another request; "
                "request a new one for this request",
                "challenge_id",
            )
        return found

    def prune(self, now: float) -> None:
        """Drop expired challenges, used markers past any expiry, and temp files
        a crash left (by their age: one being written now is seconds old)."""
        for path in self.directory.iterdir():
            try:
                if path.suffix == ".json":
                    gone = now > json.loads(path.read_text())["expires"]
                else:
                    gone = now > path.lstat().st_mtime + KEEP_USED + MAX_TTL
                if gone:
                    path.unlink()
            except (OSError, ValueError, KeyError, TypeError):
                continue
