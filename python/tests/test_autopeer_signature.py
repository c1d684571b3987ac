"""A requester proves they maintain an ASN by signing a challenge: real
`ssh-keygen -Y sign/verify` and real `gpg --detach-sign/--verify` against the
fixture registry (python/tests/data/autopeer-registry). Every refusal the issue
names is a test here: a key not in the ASN's maintainer, another ASN's
challenge, a replayed or expired challenge, a tampered message, the wrong
namespace, garbage, a PGP key whose fingerprint is not listed, a subkey; each
refusal is AutopeerRefused naming the field, never another exception."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from autopeer_signers import (
    ASN,
    FIXTURE,
    ORPHAN_ASN,
    OTHER_ASN,
    PGP_PRIMARY,
    STRANGER_PRIMARY,
    SUBKEY_ASN,
    gpg_home,
    gpg_sign,
    public_key,
    ssh_sign,
)

from ibgp_tunnel.autopeer.auth import Auth
from ibgp_tunnel.autopeer.challenge import ChallengeStore
from ibgp_tunnel.autopeer.errors import AutopeerRefused
from ibgp_tunnel.autopeer.signature import Proof, verify

DIGEST = "ab" * 32
SSH_KEY = (FIXTURE / "test-ssh-ed25519.pub").read_text().split()
MESSAGE = b"ibgp-tunnel dn42 autopeer challenge\nasn: AS4242420999\n"


def refused(field: str, words: str, call: object, *args: object) -> AutopeerRefused:
    with pytest.raises(AutopeerRefused) as caught:
        call(*args)  # type: ignore[operator]
    assert caught.value.field == field, str(caught.value)
    assert words in str(caught.value), str(caught.value)
    return caught.value


def test_an_ssh_signature_by_the_maintainers_key_is_proof() -> None:
    proof = verify(FIXTURE, ASN, MESSAGE, ssh_sign(MESSAGE))
    assert proof == Proof("TEST-AUTOPEER-MNT", Auth("ssh", f"{SSH_KEY[0]} {SSH_KEY[1]}"))


def test_a_pgp_signature_by_a_signing_subkey_proves_its_listed_primary_key() -> None:
    # test-pgp's primary key can only certify: gpg signs with its subkey, and
    # the maintainer lists the primary fingerprint (as DN42's maintainers do).
    signature = gpg_sign(MESSAGE)
    assert verify(FIXTURE, ASN, MESSAGE, signature, public_key()) == Proof(
        "TEST-AUTOPEER-MNT", Auth("pgp", PGP_PRIMARY)
    )


def test_a_maintainer_listing_only_the_subkey_fingerprint_is_not_proved() -> None:
    refused(
        "signature",
        "is not a `pgp-fingerprint`",
        verify,
        FIXTURE,
        SUBKEY_ASN,
        MESSAGE,
        gpg_sign(MESSAGE),
        public_key(),
    )


def test_an_ssh_key_of_another_maintainer_is_refused() -> None:
    signature = ssh_sign(MESSAGE, "test-other-ssh-ed25519")
    refused(
        "signature",
        "not made by an SSH key of AS4242420999",
        verify,
        FIXTURE,
        ASN,
        MESSAGE,
        signature,
    )
    # ... and the same signature is proof for the ASN that maintainer holds
    assert verify(FIXTURE, OTHER_ASN, MESSAGE, signature).maintainer == "TEST-OTHER-MNT"


def test_a_pgp_key_whose_fingerprint_is_not_listed_is_refused() -> None:
    signature = gpg_sign(MESSAGE, "test-stranger-pgp-secret.asc")
    error = refused(
        "signature",
        "is not a `pgp-fingerprint` of AS4242420999",
        verify,
        FIXTURE,
        ASN,
        MESSAGE,
        signature,
        public_key("test-stranger-pgp-public.asc"),
    )
    assert STRANGER_PRIMARY in str(error)


def test_a_stranger_sending_the_maintainers_public_key_with_their_own_is_refused(
    tmp_path: Path,
) -> None:
    # One armored block holding the victim's public key and the stranger's:
    # gpg verifies the stranger's signature, whose primary key is not listed.
    with gpg_home("test-pgp-public.asc", "test-stranger-pgp-public.asc") as gpg:
        both = subprocess.run(
            [*gpg, "--armor", "--export", PGP_PRIMARY, STRANGER_PRIMARY],
            capture_output=True,
            check=True,
        ).stdout.decode()
    signature = gpg_sign(MESSAGE, "test-stranger-pgp-secret.asc")
    refused("signature", STRANGER_PRIMARY, verify, FIXTURE, ASN, MESSAGE, signature, both)
    # with only the maintainer's key, the stranger's signature does not verify at all
    refused("signature", "does not verify", verify, FIXTURE, ASN, MESSAGE, signature, public_key())


@pytest.mark.parametrize("kind", ["ssh", "pgp"])
def test_a_tampered_message_is_refused(kind: str) -> None:
    signature = ssh_sign(MESSAGE) if kind == "ssh" else gpg_sign(MESSAGE)
    tampered = MESSAGE.replace(b"4242420999", b"4242420998")
    key = public_key() if kind == "pgp" else None
    error = refused("signature", "does not verify", verify, FIXTURE, ASN, tampered, signature, key)
    assert kind == "ssh" or "BADSIG" in str(error)


def test_a_signature_in_another_namespace_is_refused() -> None:
    # e.g. a signature the requester made for git or for a file (`-n file`)
    signature = ssh_sign(MESSAGE, namespace="file")
    refused("signature", "does not verify", verify, FIXTURE, ASN, MESSAGE, signature)


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "garbage",
        "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----",
        "-----BEGIN SSH SIGNATURE-----\n" + "QUFB" * 100 + "\n-----END SSH SIGNATURE-----",
        "-----BEGIN PGP SIGNATURE-----\n\niQEz\n-----END PGP SIGNATURE-----",
        "-----BEGIN SSH SIGNATURE-----\n$(touch /tmp/x); `id`\n-----END SSH SIGNATURE-----",
        "-----BEGIN SSH SIGNATURE-----\nA\n-----END SSH SIGNATURE-----\n" * 2,
        "-----BEGIN SSH SIGNATURE-----\n" + "A" * 20000 + "\n-----END SSH SIGNATURE-----",
        "-----BEGIN SSH SIGNATURE-----\nA\0B\n-----END SSH SIGNATURE-----",
    ],
)
def test_garbage_signatures_are_refused(signature: str) -> None:
    refused("signature", "", verify, FIXTURE, ASN, MESSAGE, signature, public_key())


def test_a_non_string_signature_is_refused() -> None:
    refused("signature", "armored", verify, FIXTURE, ASN, MESSAGE, {"a": 1}, None)


def test_an_inline_signed_message_in_signature_armor_is_refused(tmp_path: Path) -> None:
    # A signed message over other text, re-armored as if it were a detached
    # signature: gpg must never be asked to verify its embedded content instead.
    with gpg_home("test-pgp-secret.asc") as gpg:
        signed = subprocess.run(
            [*gpg, "--sign", "--compress-algo", "none"],
            input=b"other text",
            capture_output=True,
            check=True,
        ).stdout
    body = base64.b64encode(signed).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    fake = (
        "-----BEGIN PGP SIGNATURE-----\n\n" + "\n".join(lines) + "\n-----END PGP SIGNATURE-----\n"
    )
    refused("signature", "detached", verify, FIXTURE, ASN, MESSAGE, fake, public_key())


@pytest.mark.parametrize(
    "key",
    [
        None,
        "",
        "not a key",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ\n-----END PGP PUBLIC KEY BLOCK-----",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n"
        + "A" * 70000
        + "\n-----END PGP PUBLIC KEY BLOCK-----",
    ],
)
def test_a_pgp_signature_without_a_usable_public_key_is_refused(key: str | None) -> None:
    refused("pgp_public_key", "", verify, FIXTURE, ASN, MESSAGE, gpg_sign(MESSAGE), key)


def test_an_expired_pgp_key_is_refused(tmp_path: Path) -> None:
    # A key made in 2020 that expired a day later, listed by a maintainer.
    past = ["--faked-system-time", "20200101T000000!"]
    with gpg_home() as gpg:
        subprocess.run(
            [
                *gpg,
                *past,
                "--quick-gen-key",
                "Test Expired <t@example.invalid>",
                "ed25519",
                "sign",
                "1d",
            ],
            capture_output=True,
            check=True,
        )
        listing = subprocess.run(
            [*gpg, "--with-colons", "--list-keys"], capture_output=True, check=True
        )
        fingerprint = next(
            line.split(":")[9]
            for line in listing.stdout.decode().splitlines()
            if line.startswith("fpr:")
        )
        signature = subprocess.run(
            [*gpg, *past, "--armor", "--detach-sign"],
            input=MESSAGE,
            capture_output=True,
            check=True,
        ).stdout.decode()
        key = subprocess.run(
            [*gpg, "--armor", "--export", fingerprint], capture_output=True, check=True
        )
    registry = copy_registry(tmp_path)
    (registry / "data" / "mntner" / "TEST-AUTOPEER-MNT").write_text(
        f"mntner: TEST-AUTOPEER-MNT\nauth: pgp-fingerprint {fingerprint}\n"
    )
    refused(
        "signature", "EXPKEYSIG", verify, registry, ASN, MESSAGE, signature, key.stdout.decode()
    )


def copy_registry(tmp_path: Path) -> Path:
    registry = tmp_path / "registry"
    shutil.copytree(FIXTURE / "data", registry / "data")
    return registry


def test_an_asn_without_an_aut_num_or_a_usable_maintainer_is_refused() -> None:
    signature = ssh_sign(MESSAGE)
    refused("asn", "no usable aut-num", verify, FIXTURE, 4242420000, MESSAGE, signature)
    refused("asn", "TEST-MISSING-MNT", verify, FIXTURE, ORPHAN_ASN, MESSAGE, signature)
    for asn in (0, -1, 2**32, True, "4242420999"):
        refused("asn", "integer", verify, FIXTURE, asn, MESSAGE, signature)


def test_a_symlinked_maintainer_outside_the_checkout_is_not_read(tmp_path: Path) -> None:
    # An attacker's maintainer object outside the checkout, listing their key:
    # a symlink to it inside data/mntner must not make it count.
    registry = copy_registry(tmp_path)
    key = " ".join((FIXTURE / "test-other-ssh-ed25519.pub").read_text().split()[:2])
    outside = tmp_path / "evil"
    outside.write_text(f"mntner: TEST-AUTOPEER-MNT\nauth: {key}\n")
    target = registry / "data" / "mntner" / "TEST-AUTOPEER-MNT"
    target.unlink()
    target.symlink_to(outside)
    signature = ssh_sign(MESSAGE, "test-other-ssh-ed25519")
    refused("asn", "TEST-AUTOPEER-MNT", verify, registry, ASN, MESSAGE, signature)


def test_a_challenge_signed_and_used_end_to_end(tmp_path: Path) -> None:
    """issue -> sign the text -> consume -> verify; then every misuse of it."""
    store = ChallengeStore(tmp_path / "challenges", host="rr1.example")
    challenge = store.issue(ASN, "add", DIGEST, now=1000.0, ttl=300)
    signature = ssh_sign(challenge.text.encode())
    used = store.consume(challenge.id, ASN, "add", DIGEST, now=1010.0)
    proof = verify(FIXTURE, ASN, used.text.encode(), signature)
    assert proof.maintainer == "TEST-AUTOPEER-MNT"
    # replayed: the same id and signature again
    refused("challenge_id", "already used", store.consume, challenge.id, ASN, "add", DIGEST, 1020.0)
    # the signature over this challenge is no proof for another challenge's text
    other = store.issue(ASN, "add", DIGEST, now=1030.0, ttl=300)
    refused("signature", "does not verify", verify, FIXTURE, ASN, other.text.encode(), signature)


def test_a_challenge_for_another_asn_is_refused(tmp_path: Path) -> None:
    # The other maintainer asks for a challenge for their own ASN, signs it
    # validly, and submits it claiming AS4242420999.
    store = ChallengeStore(tmp_path / "challenges", host="rr1.example")
    theirs = store.issue(OTHER_ASN, "add", DIGEST, now=1000.0)
    signature = ssh_sign(theirs.text.encode(), "test-other-ssh-ed25519")
    refused(
        "challenge_id",
        "issued for AS4242420998",
        store.consume,
        theirs.id,
        ASN,
        "add",
        DIGEST,
        1001.0,
    )
    # and at the signature layer, their key is no proof for AS4242420999
    refused("signature", "not made by", verify, FIXTURE, ASN, theirs.text.encode(), signature)


def test_an_expired_challenge_is_refused_though_its_signature_is_good(tmp_path: Path) -> None:
    store = ChallengeStore(tmp_path / "challenges", host="rr1.example")
    challenge = store.issue(ASN, "add", DIGEST, now=1000.0, ttl=60)
    assert verify(FIXTURE, ASN, challenge.text.encode(), ssh_sign(challenge.text.encode()))
    refused("challenge_id", "expired", store.consume, challenge.id, ASN, "add", DIGEST, 1061.0)
