"""ssh-to-age conversion and the bech32 codec, checked against BIP-173 and the real age."""

from __future__ import annotations

import base64
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key as rsa_key
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from hypothesis import given
from hypothesis import strategies as st

from ibgp_tunnel.keys.age_recipient import (
    AgeKeyError,
    age_identity_to_recipient,
    bech32_decode,
    bech32_decode_words,
    bech32_encode,
    bech32_encode_words,
    convert_bits,
    ed25519_public_to_age,
    ed25519_seed_to_age_identity,
    ssh_private_key_to_age_identity,
    ssh_to_age,
)

# --- BIP-173 test vectors ----------------------------------------------------

VALID_BECH32 = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11" + "q" * 82 + "c8247j",  # the 90-character maximum
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]

INVALID_BECH32 = [
    "\x201nwldj5",  # HRP character out of range
    "\x7f1axkwrx",
    "\x801eym55h",
    # overall max length exceeded
    "an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx",
    "pzry9x0s0muk",  # no separator
    "1pzry9x0s0muk",  # empty HRP
    "x1b4n0q5v",  # invalid data character
    "li1dgmt3",  # too short checksum
    "de1lg7wt\xff",  # invalid character in checksum
    "A1G7SGD8",  # checksum calculated with uppercase HRP
    "10a06t8",  # empty HRP
    "1qzzfhee",  # empty HRP
]

# BIP-173 segwit addresses: witness version + program (tests the 5↔8 bit regrouping).
SEGWIT = [
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", 0, "751e76e8199196d454941c45d1b3a323f1433bd6"),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        0,
        "1863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
    ),
]


@pytest.mark.parametrize("text", VALID_BECH32)
def test_bip173_valid_vectors_roundtrip(text: str) -> None:
    hrp, words = bech32_decode_words(text)
    assert bech32_encode_words(hrp, words) == text.lower()


@pytest.mark.parametrize("text", INVALID_BECH32)
def test_bip173_invalid_vectors_rejected(text: str) -> None:
    with pytest.raises(AgeKeyError):
        bech32_decode_words(text)


@pytest.mark.parametrize(("address", "version", "program"), SEGWIT)
def test_bip173_segwit_program(address: str, version: int, program: str) -> None:
    _, words = bech32_decode_words(address)
    assert words[0] == version
    assert bytes(convert_bits(words[1:], 5, 8, pad=False)).hex() == program
    hrp = address[: address.rfind("1")].lower()
    words = [version, *convert_bits(bytes.fromhex(program), 8, 5, pad=True)]
    assert bech32_encode_words(hrp, words) == address.lower()


@given(st.binary(max_size=40))
def test_bech32_bytes_roundtrip(data: bytes) -> None:
    assert bech32_decode(bech32_encode("age", data)) == ("age", data)


# --- against the real age ------------------------------------------------------


def _run(args: list[str], stdin: bytes | None = None) -> bytes:
    return subprocess.run(args, input=stdin, capture_output=True, check=True).stdout


def _age_keygen(path: Path) -> str:
    _run(["age-keygen", "-o", str(path)])
    return next(
        line for line in path.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-")
    )


def test_identity_codec_matches_age_keygen(tmp_path: Path) -> None:
    identity = _age_keygen(tmp_path / "key.txt")
    hrp, scalar = bech32_decode(identity)
    assert hrp == "age-secret-key-"
    assert bech32_encode("AGE-SECRET-KEY-", scalar).upper() == identity
    expected = _run(["age-keygen", "-y", str(tmp_path / "key.txt")]).decode().strip()
    assert age_identity_to_recipient(identity) == expected


def _openssh_pair(seed: bytes | None = None) -> tuple[bytes, str]:
    key = Ed25519PrivateKey.from_private_bytes(seed) if seed else Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    return private, public + " root@host\n"


def _check_pair_with_age(tmp_path: Path, private: bytes, public: str) -> None:
    recipient = ssh_to_age(public)
    identity = ssh_private_key_to_age_identity(private)
    assert recipient.startswith("age1")
    assert identity.startswith("AGE-SECRET-KEY-1")
    identity_file = tmp_path / "identity.txt"
    identity_file.write_text(identity + "\n")
    # age-keygen -y derives the public key from the converted private key on its own.
    assert _run(["age-keygen", "-y", str(identity_file)]).decode().strip() == recipient
    message = b"wg_ibgp: the tunnel's secrets\n"
    ciphertext = _run(["age", "-r", recipient], stdin=message)
    assert _run(["age", "-d", "-i", str(identity_file)], stdin=ciphertext) == message


def test_ssh_keygen_pair_decrypts_with_age(tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen (openssh-client) is not installed")
    key = tmp_path / "ssh_host_ed25519_key"
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@dmz", "-f", str(key)])
    public = key.with_suffix(".pub").read_text()
    _check_pair_with_age(tmp_path, key.read_bytes(), public)


def test_cryptography_pair_decrypts_with_age(tmp_path: Path) -> None:
    private, public = _openssh_pair()
    _check_pair_with_age(tmp_path, private, public)


@given(st.binary(min_size=32, max_size=32))
def test_public_and_private_conversion_agree(seed: bytes) -> None:
    # The Montgomery map of the Ed25519 point equals X25519 of the derived scalar.
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    identity = ed25519_seed_to_age_identity(seed)
    assert ed25519_public_to_age(public) == age_identity_to_recipient(identity)


# --- input formats and bad input -----------------------------------------------


def test_accepts_known_hosts_and_authorized_keys_forms() -> None:
    _, public = _openssh_pair(bytes(range(32)))
    expected = ssh_to_age(public)
    key_type, blob = public.split()[:2]
    assert ssh_to_age(f"dmz.example.org {key_type} {blob}\n") == expected
    assert ssh_to_age(f'# comment\n\nrestrict,command="true" {key_type} {blob} c\n') == expected
    assert ssh_to_age(f"{key_type} {blob}") == expected


def test_rejects_rsa_key_with_a_hint() -> None:
    public = rsa_key(public_exponent=65537, key_size=1024).public_key()
    line = public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    with pytest.raises(AgeKeyError, match=r"ssh_host_ed25519_key\.pub"):
        ssh_to_age(line)


@pytest.mark.parametrize(
    "text",
    ["", "not a key", "ssh-ed25519 !!!notbase64", "ssh-ed25519 " + base64.b64encode(b"x").decode()],
)
def test_rejects_garbage(text: str) -> None:
    with pytest.raises(AgeKeyError):
        ssh_to_age(text)


def _ssh_blob(key_type: bytes, key: bytes) -> str:
    blob = struct.pack(">I", len(key_type)) + key_type + struct.pack(">I", len(key)) + key
    return base64.b64encode(blob).decode()


def test_rejects_mislabelled_blob() -> None:
    with pytest.raises(AgeKeyError, match="blob says"):
        ssh_to_age("ssh-ed25519 " + _ssh_blob(b"ssh-rsa", bytes(32)))


def test_rejects_point_off_the_curve() -> None:
    # y = 2 gives x² = 3 / (4d + 1), which is not a square mod p.
    with pytest.raises(AgeKeyError, match="not a point on the curve"):
        ssh_to_age("ssh-ed25519 " + _ssh_blob(b"ssh-ed25519", (2).to_bytes(32, "little")))


def test_rejects_identity_point() -> None:
    with pytest.raises(AgeKeyError, match="degenerate"):
        ssh_to_age("ssh-ed25519 " + _ssh_blob(b"ssh-ed25519", (1).to_bytes(32, "little")))


def test_private_key_given_as_public_key_gets_a_hint() -> None:
    private, _ = _openssh_pair()
    with pytest.raises(AgeKeyError, match=r"the \.pub file"):
        ssh_to_age(private.decode())


def test_rejects_non_ed25519_private_key() -> None:
    key = rsa_key(public_exponent=65537, key_size=1024)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    with pytest.raises(AgeKeyError, match="only ed25519"):
        ssh_private_key_to_age_identity(pem)
    with pytest.raises(AgeKeyError, match="cannot read"):
        ssh_private_key_to_age_identity(b"garbage")
