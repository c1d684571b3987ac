"""A signature over a challenge, proven to come from a maintainer of the ASN: the
aut-num's `mnt-by` maintainers, their `auth:` keys (autopeer/registry.py), and
the real verifiers. SSH: `ssh-keygen -Y find-principals` then `-Y verify` in our
own namespace, against an allowed-signers file holding only that ASN's
maintainers' keys. PGP: `gpg --verify` in a throwaway GNUPGHOME holding only the
public key the requester sent; the signature counts only if gpg reports it good
and valid and the primary key's fingerprint is one of the maintainers'
`pgp-fingerprint` lines (a subkey signs for its primary key, which gpg checks
through the subkey's binding)."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ibgp_tunnel.autopeer.auth import Auth
from ibgp_tunnel.autopeer.errors import AutopeerRefused
from ibgp_tunnel.autopeer.registry import Mntner, ObjectSkipped, aut_num, mntner
from ibgp_tunnel.errors import InputError

NAMESPACE = "dn42-autopeer@ibgp-tunnel"
MAX_SIGNATURE = 16 * 1024
MAX_PUBLIC_KEY = 64 * 1024
MAX_MESSAGE = 64 * 1024
TIMEOUT = 20
SSH_ARMOR = ("-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----")
PGP_ARMOR = ("-----BEGIN PGP SIGNATURE-----", "-----END PGP SIGNATURE-----")
PGP_KEY_ARMOR = ("-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----END PGP PUBLIC KEY BLOCK-----")
# Armor lines: headers (`Key: value`), base64, the CRC line (`=abcd`).
ARMOR_BODY = re.compile(r"[A-Za-z0-9+/=:. \-\n]*")
# gpg status lines that mean the signature does not count, whatever else it says.
PGP_BAD = ("BADSIG", "ERRSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG", "NO_PUBKEY", "FAILURE")


@dataclass(frozen=True)
class Proof:
    """Which maintainer's which key signed."""

    maintainer: str
    auth: Auth


def verify(
    registry_dir: Path,
    asn: int,
    message: bytes,
    signature: str,
    pgp_public_key: str | None = None,
) -> Proof:
    """The proof that a maintainer of `asn` signed `message`, or AutopeerRefused
    naming the field (`asn`, `signature`, `pgp_public_key`) and the fix."""
    if not isinstance(message, bytes) or len(message) > MAX_MESSAGE:
        raise AutopeerRefused(
            "challenge: the message to verify is not a challenge text", "challenge"
        )
    kind = signature_kind(signature)
    maintainers = asn_maintainers(registry_dir, asn)
    candidates = [(m.name, a) for m in maintainers for a in m.auths if a.kind == kind]
    if not candidates:
        names = ", ".join(m.name for m in maintainers)
        raise AutopeerRefused(
            f"signature: AS{asn}'s maintainers ({names}) list no {kind.upper()} key in the "
            f"registry; sign with a key of their `auth:` lines",
            "signature",
        )
    if kind == "ssh":
        return verify_ssh(asn, message, signature, candidates)
    return verify_pgp(asn, message, signature, pgp_public_key, candidates)


def signature_kind(signature: object) -> str:
    """ "ssh" or "pgp" from the signature's armor; AutopeerRefused otherwise."""
    if not isinstance(signature, str) or len(signature) > MAX_SIGNATURE:
        raise AutopeerRefused(
            "signature: send the armored signature text (at most 16 KiB)", "signature"
        )
    for kind, (begin, end) in (("ssh", SSH_ARMOR), ("pgp", PGP_ARMOR)):
        body = armored(signature, begin, end)
        if body is not None:
            return kind
    raise AutopeerRefused(
        "signature: not an armored SSH signature (`ssh-keygen -Y sign -n "
        f"{NAMESPACE}`) or PGP signature (`gpg --armor --detach-sign`)",
        "signature",
    )


def armored(text: str, begin: str, end: str) -> str | None:
    """The body of exactly one armor block that is the whole text, else None."""
    lines = text.strip().replace("\r\n", "\n").split("\n")
    if len(lines) < 3 or lines[0] != begin or lines[-1] != end:
        return None
    body = "\n".join(lines[1:-1])
    if "-----" in body or not ARMOR_BODY.fullmatch(body):
        return None
    return body


def asn_maintainers(registry_dir: Path, asn: int) -> list[Mntner]:
    """The ASN's maintainers that exist in the registry (`mnt-by` naming a missing
    or unreadable maintainer is skipped); AutopeerRefused if none does."""
    autnum = aut_num(registry_dir, asn)
    found: list[Mntner] = []
    reasons: list[str] = []
    for name in dict.fromkeys(autnum.mnt_by):
        try:
            found.append(mntner(registry_dir, name))
        except ObjectSkipped as reason:
            reasons.append(f"{name}: {reason}")
    if not found:
        raise AutopeerRefused(
            f"asn: AS{asn}'s maintainers have no usable mntner object ({'; '.join(reasons)})", "asn"
        )
    return found


def run(
    argv: list[str], *, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """A verifier run with a clean environment and a time limit; a missing tool is
    the operator's problem (InputError), not the requester's."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", **(env or {})}
    try:
        return subprocess.run(
            argv, input=stdin, capture_output=True, env=clean, timeout=TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise InputError(f"install {argv[0]} (the signature verifier) on this host") from None
    except subprocess.TimeoutExpired:
        raise AutopeerRefused(
            "signature: verification took too long; send a plain signature", "signature"
        ) from None


def verify_ssh(
    asn: int, message: bytes, signature: str, candidates: list[tuple[str, Auth]]
) -> Proof:
    with tempfile.TemporaryDirectory(prefix="autopeer-ssh-") as tmp:
        allowed, sig = Path(tmp) / "allowed_signers", Path(tmp) / "message.sig"
        # Principals are our own indexes: nothing of the registry but the key
        # (already checked to be `<type> <base64>`) reaches the file.
        allowed.write_text(
            "".join(
                f'k{i} namespaces="{NAMESPACE}" {auth.value}\n'
                for i, (_, auth) in enumerate(candidates)
            )
        )
        sig.write_text(signature.strip() + "\n")
        found = run(["ssh-keygen", "-Y", "find-principals", "-s", str(sig), "-f", str(allowed)])
        principals = [
            p for p in found.stdout.decode(errors="replace").split() if re.fullmatch(r"k[0-9]+", p)
        ]
        if found.returncode != 0 or not principals:
            raise AutopeerRefused(
                f"signature: not made by an SSH key of AS{asn}'s maintainers; sign with a key "
                "their `auth:` lines list",
                "signature",
            )
        for principal in principals:
            checked = run(
                [
                    "ssh-keygen",
                    "-Y",
                    "verify",
                    "-f",
                    str(allowed),
                    "-I",
                    principal,
                    "-n",
                    NAMESPACE,
                    "-s",
                    str(sig),
                ],
                stdin=message,
            )
            if checked.returncode == 0:
                name, auth = candidates[int(principal[1:])]
                return Proof(name, auth)
    raise AutopeerRefused(
        f"signature: does not verify for this challenge (sign exactly the challenge text with "
        f"`ssh-keygen -Y sign -n {NAMESPACE} -f <key>`)",
        "signature",
    )


def verify_pgp(
    asn: int,
    message: bytes,
    signature: str,
    public_key: str | None,
    candidates: list[tuple[str, Auth]],
) -> Proof:
    if (
        not isinstance(public_key, str)
        or len(public_key) > MAX_PUBLIC_KEY
        or armored(public_key, *PGP_KEY_ARMOR) is None
    ):
        raise AutopeerRefused(
            "pgp_public_key: send your armored public key (`gpg --armor --export <fingerprint>`, "
            "at most 64 KiB)",
            "pgp_public_key",
        )
    with tempfile.TemporaryDirectory(prefix="ap-gpg-") as home:
        os.chmod(home, 0o700)
        gpg = ["gpg", "--homedir", home, "--batch", "--no-tty", "--no-autostart", "--no-options"]
        key, sig, msg = Path(home) / "key.asc", Path(home) / "message.sig", Path(home) / "message"
        key.write_text(public_key)
        sig.write_text(signature.strip() + "\n")
        msg.write_bytes(message)
        imported = run([*gpg, "--import", str(key)])
        if imported.returncode != 0:
            raise AutopeerRefused(
                "pgp_public_key: gpg could not import it; send an OpenPGP public key",
                "pgp_public_key",
            )
        packets = run([*gpg, "--list-packets", str(sig)])
        kinds = re.findall(rb"^:([a-z ]+):", packets.stdout, re.M)
        if packets.returncode != 0 or not kinds or set(kinds) != {b"signature packet"}:
            raise AutopeerRefused(
                "signature: not a detached PGP signature (`gpg --armor --detach-sign`)", "signature"
            )
        checked = run([*gpg, "--status-fd", "1", "--verify", str(sig), str(msg)])
        primary = pgp_primary(checked)
    if primary.startswith("refused: "):
        raise AutopeerRefused(
            "signature: does not verify for this challenge with the key you sent (sign "
            "exactly the challenge text with `gpg --armor --detach-sign` and a key of "
            f"AS{asn}'s maintainers, not expired or revoked; {primary[9:]})",
            "signature",
        )
    for name, auth in candidates:
        if auth.value == primary:
            return Proof(name, auth)
    raise AutopeerRefused(
        f"signature: key {primary} is not a `pgp-fingerprint` of AS{asn}'s maintainers; sign with "
        "a key their `auth:` lines list",
        "signature",
    )


def pgp_primary(checked: subprocess.CompletedProcess[bytes]) -> str:
    """The primary key fingerprint of the one good, valid signature gpg reported,
    else why not, as gpg's status keywords (bad, expired, revoked, several
    signatures, gpg failed): the word "refused: " then the keywords."""
    status = [line.split() for line in checked.stdout.decode(errors="replace").splitlines()]
    status = [words[1:] for words in status if len(words) > 1 and words[0] == "[GNUPG:]"]
    names = [words[0] for words in status]
    bad = [name for name in names if name in PGP_BAD]
    if checked.returncode != 0 or bad:
        return f"refused: gpg {' '.join(bad) or f'exit {checked.returncode}'}"
    valid = [words for words in status if words[0] == "VALIDSIG"]
    if names.count("GOODSIG") != 1 or len(valid) != 1 or len(valid[0]) < 11:
        return "refused: not exactly one good signature"
    # VALIDSIG <fpr> <date> <timestamp> <expires> <version> <reserved> <pk-algo>
    #   <hash-algo> <class> <primary-fpr>
    if valid[0][9] not in ("00", "01") or not re.fullmatch(r"[0-9A-F]{40}", valid[0][10]):
        return "refused: not a signature over a document"
    return valid[0][10]
