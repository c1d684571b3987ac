"""A maintainer's `auth:` line as a key we can verify a signature against, or the
reason it is not one. DN42's operators wrote every form: OpenSSH public keys
(`ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-*`, `sk-*`), `pgp-fingerprint`, and
also PGPKEY- key-cert references, other maintainers, signify keys, passwords,
and typos. Only SSH keys and PGP fingerprints prove anything here; a key is
accepted only as OpenSSH itself encodes it, so what reaches ssh-keygen's
allowed-signers file is exactly `<type> <base64>`."""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass
from typing import Literal

# The strings of each type's key blob: the type name, then the key (RFC 4253,
# RFC 5656, RFC 8709; sk-* end with the FIDO application, PROTOCOL.u2f).
SSH_FIELDS = {
    "ssh-ed25519": 2,
    "ssh-rsa": 3,
    "ecdsa-sha2-nistp256": 3,
    "ecdsa-sha2-nistp384": 3,
    "ecdsa-sha2-nistp521": 3,
    "sk-ssh-ed25519@openssh.com": 3,
    "sk-ecdsa-sha2-nistp256@openssh.com": 4,
}
# A 16384-bit RSA key is about 2 KB; anything longer is not a key.
MAX_SSH_BLOB = 4096
# Methods DN42's schema or its operators know that prove nothing to us.
UNSUPPORTED = (
    "signify",
    "ed25519-pw",
    "from-git-repo",
    "crypt-pw",
    "md5-pw",
    "bcrypt-pw",
    "password",
)
# Skip reasons start with one of these (the registry scan counts by them).
CATEGORIES = (
    "empty",
    "PGPKEY- key-cert reference",
    "maintainer reference",
    "unsupported method",
    "unknown method",
    "malformed pgp-fingerprint",
    "malformed SSH key",
)


@dataclass(frozen=True)
class Auth:
    """`kind` "ssh": value is `<type> <base64>` (no comment); "pgp": value is the
    primary key's fingerprint, 40 upper-case hex digits."""

    kind: Literal["ssh", "pgp"]
    value: str


def parse_auth(value: str) -> Auth | str:
    """One `auth:` value as an Auth, or the skip reason (a CATEGORIES entry,
    then what is wrong and the fix). Never raises."""
    words = value.split()
    if not words:
        return "empty: an `auth:` line with no value"
    method = words[0]
    if method == "pgp-fingerprint":
        return pgp_fingerprint(words[1:])
    if method in SSH_FIELDS:
        return ssh_key(method, words[1:2])
    if re.fullmatch(r"PGPKEY-[0-9A-Fa-f]{8,40}", method):
        return (
            "PGPKEY- key-cert reference: DN42's registry holds no key-cert objects; "
            "write `auth: pgp-fingerprint <40 hex digits>`"
        )
    named = len(words) == 1 and re.fullmatch(r"[A-Z0-9-]*(MNT|MTN)[A-Z0-9-]*", method)
    if method.lower() == "mntner" or named:
        return "maintainer reference: another maintainer's auths are not followed"
    if method.lower() in UNSUPPORTED:
        return f"unsupported method: {method[:40]} (use an SSH key or a pgp-fingerprint)"
    return (
        f"unknown method: {method[:40]!r} "
        "(use ssh-ed25519, ssh-rsa, ecdsa-sha2-*, sk-* or pgp-fingerprint)"
    )


def pgp_fingerprint(words: list[str]) -> Auth | str:
    """GnuPG prints fingerprints in groups of four; the registry holds them in
    either case. A v4 fingerprint is 40 hex digits."""
    joined = "".join(words)
    if not re.fullmatch(r"(0x)?[0-9A-Fa-f]{40}", joined):
        return "malformed pgp-fingerprint: not 40 hex digits"
    return Auth("pgp", joined[-40:].upper())


def ssh_key(method: str, words: list[str]) -> Auth | str:
    """An OpenSSH public key: the base64 blob must decode and name the same type
    as the line (a comment after it is dropped)."""
    if not words:
        return f"malformed SSH key: {method} without a key"
    blob_text = words[0]
    if len(blob_text) > MAX_SSH_BLOB * 2 or not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", blob_text):
        return f"malformed SSH key: {method} key is not base64"
    try:
        blob = base64.b64decode(blob_text, validate=True)
    except (binascii.Error, ValueError):
        return f"malformed SSH key: {method} key is not base64"
    if len(blob) > MAX_SSH_BLOB:
        return f"malformed SSH key: {method} key is too long"
    fields = blob_fields(blob)
    if not fields or fields[0] != method.encode():
        return f"malformed SSH key: the key is not a {method} key"
    if len(fields) != SSH_FIELDS[method] or not fields_fit(method, fields):
        return f"malformed SSH key: the {method} key is incomplete or has extra data"
    return Auth("ssh", f"{method} {blob_text}")


def blob_fields(blob: bytes) -> list[bytes]:
    """An OpenSSH key blob as its strings (each a uint32 length, then the bytes);
    empty if they do not fill the blob exactly."""
    fields: list[bytes] = []
    while blob:
        if len(blob) < 4:
            return []
        (length,) = struct.unpack(">I", blob[:4])
        if len(blob) < 4 + length:
            return []
        fields.append(blob[4 : 4 + length])
        blob = blob[4 + length :]
    return fields


def fields_fit(method: str, fields: list[bytes]) -> bool:
    """An Ed25519 key is 32 bytes; an ECDSA key names its own curve."""
    if "ed25519" in method:
        return len(fields[1]) == 32
    if "ecdsa" in method:
        curve = fields[1].decode("ascii", errors="replace")
        return curve in ("nistp256", "nistp384", "nistp521") and method.split("@")[0].endswith(
            curve
        )
    return True


def auth_category(reason: str) -> str:
    """The CATEGORIES entry a skip reason starts with."""
    return next((c for c in CATEGORIES if reason.startswith(c)), "other")
