"""SSH ed25519 keys as age keys: the conversion ssh-to-age does, without ssh-to-age.

sops-nix decrypts on the host with ``sops.age.sshKeyPaths``: it turns the host's
ed25519 SSH key into an X25519 age identity. To encrypt *for* that host we need the
matching ``age1…`` recipient, derived from the SSH public key the same way:

- public: the Ed25519 point's y coordinate → the birationally equivalent
  Montgomery u = (1 + y) / (1 - y) mod p, 32 bytes little-endian, bech32 with hrp
  ``age``;
- private: SHA-512 of the 32-byte Ed25519 seed, first 32 bytes, bech32 with hrp
  ``AGE-SECRET-KEY-``, upper case. X25519 clamps the scalar when it uses it, so
  like ssh-to-age we keep the bytes unclamped: the string is identical to
  ssh-to-age's output and ``age-keygen -y`` gives the same recipient either way.

age uses BIP-173 bech32 (not bech32m); the small codec is here because nothing
in our dependencies provides it.

Functions:
    ssh_to_age(ssh_pubkey_text: str) -> str
    ed25519_public_to_age(public_key: bytes) -> str
    ed25519_seed_to_age_identity(seed: bytes) -> str
    ssh_private_key_to_age_identity(key_text: bytes, password: bytes | None = None) -> str
    age_identity_to_recipient(identity: str) -> str
    bech32_encode(hrp: str, data: bytes) -> str
    bech32_decode(text: str, limit: int = 90) -> tuple[str, bytes]
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_ssh_private_key


class AgeKeyError(ValueError):
    """A key that cannot be turned into an age recipient or identity."""


# --- bech32 (BIP-173) ------------------------------------------------------

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _checksum(hrp: str, words: list[int]) -> list[int]:
    # Constant 1 is bech32; bech32m would be 0x2BC830A3, which age does not use.
    mod = _polymod(_hrp_expand(hrp) + words + [0] * 6) ^ 1
    return [(mod >> 5 * (5 - i)) & 31 for i in range(6)]


def convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    """Regroup a sequence of ``from_bits``-wide integers into ``to_bits``-wide ones."""
    acc = 0
    bits = 0
    out: list[int] = []
    max_value = (1 << to_bits) - 1
    for value in data:
        if value < 0 or value >> from_bits:
            raise AgeKeyError(f"bech32: value {value} does not fit in {from_bits} bits")
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & max_value)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & max_value)
    elif bits >= from_bits or (acc << (to_bits - bits)) & max_value:
        raise AgeKeyError("bech32: invalid padding in data part")
    return out


def bech32_encode_words(hrp: str, words: list[int]) -> str:
    """Encode 5-bit words under ``hrp``; the case of ``hrp`` is kept (age upper-cases later)."""
    lower = hrp.lower()
    encoded = "".join(_CHARSET[w] for w in words + _checksum(lower, words))
    return lower + "1" + encoded


def bech32_encode(hrp: str, data: bytes) -> str:
    """Bech32-encode bytes under a human-readable part, lower case."""
    return bech32_encode_words(hrp, convert_bits(data, 8, 5, pad=True))


def bech32_decode_words(text: str, limit: int = 90) -> tuple[str, list[int]]:
    """Split and verify a bech32 string; returns the lower-case hrp and the 5-bit words."""
    if any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise AgeKeyError("bech32: character out of range")
    if text.lower() != text and text.upper() != text:
        raise AgeKeyError("bech32: mixed case")
    if len(text) > limit:
        raise AgeKeyError(f"bech32: longer than {limit} characters")
    text = text.lower()
    sep = text.rfind("1")
    if sep < 1:
        raise AgeKeyError("bech32: missing separator or empty human-readable part")
    if sep + 7 > len(text):
        raise AgeKeyError("bech32: checksum too short")
    hrp, data_part = text[:sep], text[sep + 1 :]
    if any(c not in _CHARSET for c in data_part):
        raise AgeKeyError("bech32: invalid data character")
    words = [_CHARSET.index(c) for c in data_part]
    if _polymod(_hrp_expand(hrp) + words) != 1:
        raise AgeKeyError("bech32: checksum mismatch")
    return hrp, words[:-6]


def bech32_decode(text: str, limit: int = 90) -> tuple[str, bytes]:
    """Decode a bech32 string whose data part holds bytes."""
    hrp, words = bech32_decode_words(text, limit)
    return hrp, bytes(convert_bits(words, 5, 8, pad=False))


# --- Ed25519 → X25519 ------------------------------------------------------

_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P


def _on_curve(y: int) -> bool:
    # x² = (y² - 1) / (d·y² + 1) must have a square root mod p (Euler's criterion).
    y2 = y * y % _P
    x2 = (y2 - 1) * pow(_D * y2 + 1, _P - 2, _P) % _P
    return x2 == 0 or pow(x2, (_P - 1) // 2, _P) == 1


def ed25519_public_to_x25519(public_key: bytes) -> bytes:
    """Map an Ed25519 public key to its X25519 (Montgomery u) public key."""
    if len(public_key) != 32:
        raise AgeKeyError(f"an ed25519 public key is 32 bytes, this one is {len(public_key)}")
    # Like filippo.io/edwards25519 (which ssh-to-age uses): the sign bit is ignored
    # and a non-canonical y is reduced, but a point off the curve is rejected.
    y = int.from_bytes(public_key, "little") & ((1 << 255) - 1)
    y %= _P
    if not _on_curve(y):
        raise AgeKeyError("the ed25519 public key is not a point on the curve")
    u = (1 + y) * pow(1 - y, _P - 2, _P) % _P
    if u == 0:
        raise AgeKeyError("the ed25519 public key is a degenerate point and cannot encrypt")
    return u.to_bytes(32, "little")


def ed25519_public_to_age(public_key: bytes) -> str:
    """The ``age1…`` recipient for a raw 32-byte Ed25519 public key."""
    return bech32_encode("age", ed25519_public_to_x25519(public_key))


def _ssh_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(blob):
        raise AgeKeyError("the SSH public key blob is truncated")
    (length,) = struct.unpack_from(">I", blob, offset)
    end = offset + 4 + length
    if end > len(blob):
        raise AgeKeyError("the SSH public key blob is truncated")
    return blob[offset + 4 : end], end


def _ed25519_from_ssh_line(line: str) -> bytes | None:
    tokens = line.split()
    # authorized_keys ("ssh-ed25519 AAAA… comment", maybe after options) and
    # known_hosts / ssh-keyscan ("host ssh-ed25519 AAAA…") both put the base64
    # blob right after the key type.
    for i, token in enumerate(tokens[:-1]):
        if token == "ssh-ed25519":
            try:
                blob = base64.b64decode(tokens[i + 1], validate=True)
            except binascii.Error as exc:
                raise AgeKeyError(f"the ssh-ed25519 key is not valid base64: {exc}") from exc
            key_type, offset = _ssh_string(blob, 0)
            if key_type != b"ssh-ed25519":
                raise AgeKeyError(f"the key is labelled ssh-ed25519 but its blob says {key_type!r}")
            key, offset = _ssh_string(blob, offset)
            if offset != len(blob) or len(key) != 32:
                raise AgeKeyError("the ssh-ed25519 key blob has the wrong length")
            return key
    return None


def ssh_to_age(ssh_pubkey_text: str) -> str:
    """The ``age1…`` recipient for the first ssh-ed25519 key in an SSH public key text.

    Accepts an ``.pub`` file, an authorized_keys line or ssh-keyscan output.
    """
    if "PRIVATE KEY-----" in ssh_pubkey_text:
        raise AgeKeyError("this is a private key; give the public one (the .pub file)")
    other_types: list[str] = []
    for raw in ssh_pubkey_text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key = _ed25519_from_ssh_line(line)
        if key is not None:
            return ed25519_public_to_age(key)
        other_types.extend(t for t in line.split() if t.startswith(("ssh-", "ecdsa-", "sk-")))
    if other_types:
        raise AgeKeyError(
            f"only ssh-ed25519 keys can become age recipients, found {', '.join(other_types)}; "
            "use the host's /etc/ssh/ssh_host_ed25519_key.pub"
        )
    raise AgeKeyError(
        "no ssh-ed25519 public key found; expected a line like 'ssh-ed25519 AAAA… comment' "
        "(e.g. the host's /etc/ssh/ssh_host_ed25519_key.pub)"
    )


def ed25519_seed_to_age_identity(seed: bytes) -> str:
    """The ``AGE-SECRET-KEY-1…`` identity for a 32-byte Ed25519 private seed."""
    if len(seed) != 32:
        raise AgeKeyError(f"an ed25519 seed is 32 bytes, this one is {len(seed)}")
    scalar = hashlib.sha512(seed).digest()[:32]
    return bech32_encode("AGE-SECRET-KEY-", scalar).upper()


def ssh_private_key_to_age_identity(key_text: bytes, password: bytes | None = None) -> str:
    """The age identity for an OpenSSH ed25519 private key file's contents."""
    try:
        key = load_ssh_private_key(key_text, password=password)
    except (ValueError, TypeError) as exc:
        raise AgeKeyError(f"cannot read the SSH private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AgeKeyError("only ed25519 SSH keys can become age identities")
    return ed25519_seed_to_age_identity(key.private_bytes_raw())


def age_identity_to_recipient(identity: str) -> str:
    """The ``age1…`` recipient of an ``AGE-SECRET-KEY-1…`` identity (like ``age-keygen -y``)."""
    hrp, scalar = bech32_decode(identity.strip())
    if hrp != "age-secret-key-" or len(scalar) != 32:
        raise AgeKeyError("not an age X25519 identity (AGE-SECRET-KEY-1…)")
    public = X25519PrivateKey.from_private_bytes(scalar).public_key().public_bytes_raw()
    return bech32_encode("age", public)
