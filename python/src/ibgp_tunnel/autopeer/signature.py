"""A signature by a key of the ASN's maintainer (the thinnest version under the
design's contract, written by the web part to test against; the auth part's
fuller one replaces it): SSH with `ssh-keygen -Y verify`, PGP with `gpg --verify`
in a throwaway home, accepted only for a fingerprint the maintainer lists."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ibgp_tunnel.autopeer.errors import AutopeerRefused
from ibgp_tunnel.autopeer.registry import Auth, aut_num, mntner

NAMESPACE = "dn42-autopeer@ibgp-tunnel"


@dataclass(frozen=True)
class Proof:
    maintainer: str
    auth: Auth


def verify(
    registry_dir: Path, asn: int, message: bytes, signature: str, pgp_public_key: str | None
) -> Proof:
    keys = [
        (m.name, a)
        for name in aut_num(registry_dir, asn).mnt_by
        for m in [mntner(registry_dir, name)]
        for a in m.auths
    ]
    with tempfile.TemporaryDirectory(prefix="autopeer-verify-") as tmp:
        work = Path(tmp)
        (work / "message").write_bytes(message)
        (work / "signature").write_text(signature)
        if pgp_public_key is None:
            for name, auth in keys:
                if auth.kind == "ssh" and _ssh_ok(work, auth.value, message):
                    return Proof(name, auth)
        else:
            fingerprint = _pgp_primary(work, pgp_public_key)
            for name, auth in keys:
                if auth.kind == "pgp" and fingerprint == auth.value:
                    return Proof(name, auth)
    raise AutopeerRefused(
        f"signature: not a valid signature of the challenge by a key of AS{asn}'s maintainer",
        "signature",
    )


def _ssh_ok(work: Path, key: str, message: bytes) -> bool:
    (work / "allowed").write_text(f'autopeer namespaces="{NAMESPACE}" {key}\n')
    result = subprocess.run(
        [
            "ssh-keygen",
            "-Y",
            "verify",
            "-f",
            str(work / "allowed"),
            "-I",
            "autopeer",
            "-n",
            NAMESPACE,
            "-s",
            str(work / "signature"),
        ],
        input=message,
        capture_output=True,
        timeout=10,
        check=False,
    )
    return result.returncode == 0


def _pgp_primary(work: Path, public_key: str) -> str | None:
    home = work / "gnupg"
    home.mkdir(mode=0o700)
    (work / "key.asc").write_text(public_key)
    base = ["gpg", "--homedir", str(home), "--batch", "--no-tty", "--quiet"]
    subprocess.run(
        [*base, "--import", str(work / "key.asc")], capture_output=True, timeout=20, check=False
    )
    result = subprocess.run(
        [*base, "--status-fd", "1", "--verify", str(work / "signature"), str(work / "message")],
        capture_output=True,
        timeout=20,
        check=False,
        text=True,
    )
    for line in result.stdout.splitlines():
        words = line.split()
        if words[:2] == ["[GNUPG:]", "VALIDSIG"] and len(words) >= 12:
            return words[11].upper()
    return None
