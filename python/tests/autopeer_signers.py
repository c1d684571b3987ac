"""The fixture registry's test signers, signing with the real tools: ssh-keygen
(`-Y sign` in autopeer's namespace) and gpg (a throwaway GNUPGHOME holding the
test secret key). Shared by the autopeer tests."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ibgp_tunnel.autopeer.signature import NAMESPACE

FIXTURE = Path(__file__).resolve().parent / "data" / "autopeer-registry"
ASN = 4242420999  # TEST-AUTOPEER-MNT: test-ssh-ed25519, test-pgp (a signing subkey)
OTHER_ASN = 4242420998  # TEST-OTHER-MNT: test-other-ssh-ed25519, test-stranger-pgp
SUBKEY_ASN = 4242420997  # TEST-SUBKEY-MNT: lists only test-pgp's subkey fingerprint
ORPHAN_ASN = 4242420996  # mnt-by names a maintainer the registry lacks
SECOND_OTHER_ASN = 4242420995  # TEST-OTHER-MNT too; no test plan peers with it statically
PGP_PRIMARY = "0EF97CE45C721701042FD45F9CB17C29CC0F2DAA"
PGP_SUBKEY = "D9463F68AABCACB9F74E7DC6D49EF3A4214C995F"
STRANGER_PRIMARY = "A4F4E173ADBEB1CBB123B061218422EB49D269F2"


def ssh_sign(message: bytes, key: str = "test-ssh-ed25519", namespace: str = NAMESPACE) -> str:
    """`ssh-keygen -Y sign` over the message (a copy of the key at 0600: git
    keeps no mode and ssh-keygen refuses a readable private key)."""
    with tempfile.TemporaryDirectory() as tmp:
        private = Path(tmp) / "key"
        shutil.copyfile(FIXTURE / key, private)
        private.chmod(0o600)
        done = subprocess.run(
            ["ssh-keygen", "-Y", "sign", "-q", "-f", str(private), "-n", namespace],
            input=message,
            capture_output=True,
            check=True,
        )
    return done.stdout.decode()


@contextmanager
def gpg_home(*keys: str) -> Iterator[list[str]]:
    """A gpg command line on a fresh home with these test keys imported; the
    agent gpg starts for it is stopped on the way out. The home is a short
    temporary path, never the test's tmp_path: gpg-agent's socket lives in it
    and a Unix socket's path has at most 107 bytes (pytest's directories under
    a long TMPDIR, as in the package's check, are longer)."""
    with tempfile.TemporaryDirectory(prefix="gpg-") as tmp:
        home = Path(tmp)
        home.chmod(0o700)
        gpg = ["gpg", "--homedir", str(home), "--batch", "--no-tty", "--pinentry-mode", "loopback"]
        gpg += ["--passphrase", ""]
        try:
            for name in keys:
                subprocess.run(
                    [*gpg, "--import", str(FIXTURE / name)], capture_output=True, check=True
                )
            yield gpg
        finally:
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


def gpg_sign(message: bytes, secret: str = "test-pgp-secret.asc", user: str = "") -> str:
    """`gpg --armor --detach-sign` over the message with a test secret key."""
    chosen = ["--local-user", user] if user else []
    with gpg_home(secret) as gpg:
        done = subprocess.run(
            [*gpg, *chosen, "--armor", "--detach-sign"],
            input=message,
            capture_output=True,
            check=True,
        )
    return done.stdout.decode()


def public_key(name: str = "test-pgp-public.asc") -> str:
    return (FIXTURE / name).read_text()


def registry_with(root: Path, *asns: int) -> Path:
    """The fixture registry copied under `root`, with these ASNs added as
    TEST-AUTOPEER-MNT's (test-ssh-ed25519 signs for them)."""
    registry = root / "registry"
    shutil.copytree(FIXTURE / "data", registry / "data")
    for asn in asns:
        (registry / "data" / "aut-num" / f"AS{asn}").write_text(
            f"aut-num:            AS{asn}\n"
            "as-name:            TEST-AUTOPEER-AS\n"
            "mnt-by:             TEST-AUTOPEER-MNT\n"
            "source:             DN42\n"
        )
    return registry


def signed_entry(
    asn: int,
    request: dict[str, Any] | None,
    op: str = "add",
    key: str = "test-ssh-ed25519",
    host: str = "reflector",
) -> dict[str, Any]:
    """A spool entry as the web service writes it: a fresh challenge bound to the
    request's digest, signed with a test key (what a peers/ record keeps as `signed`)."""
    from ibgp_tunnel.autopeer.apply import request_digest
    from ibgp_tunnel.autopeer.challenge import ChallengeStore
    from ibgp_tunnel.autopeer.spool import now_iso

    digest = request_digest(request) if request is not None else "0" * 64
    with tempfile.TemporaryDirectory(prefix="ap-challenge-") as tmp:
        challenge = ChallengeStore(Path(tmp), host=host).issue(asn, op, digest, ttl=60)
    return {
        "version": 1,
        "op": op,
        "asn": asn,
        "request": request,
        "challenge": {"id": challenge.id, "text": challenge.text},
        "signature": ssh_sign(challenge.text.encode(), key),
        "signature_kind": "ssh",
        "pgp_public_key": None,
        "received": now_iso(),
    }
