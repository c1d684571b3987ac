"""Test helpers for the autopeer web service: a registry in DN42's layout with
real SSH and PGP keys made for the run, signing with the real ssh-keygen and gpg,
the service on 127.0.0.1 with an ephemeral port, and a small JSON client."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ibgp_tunnel.autopeer.server import AutopeerServer
from ibgp_tunnel.autopeer.signature import NAMESPACE
from ibgp_tunnel.autopeer.web import Web, WebConfig

# Ours (the signer) and another operator's (a key the ASN's maintainer does not list).
ASN = 4242420999
OTHER_ASN = 4242420998
MNTNER = "TEST-AUTOPEER-MNT"
OTHER_MNTNER = "TEST-OTHER-MNT"
WG_KEY = "l0iLeIz5KG5W7Nq4yJ8vCDwdr9DyhYD5cGBTmF2LKFU="


@dataclass(frozen=True)
class Keys:
    ssh: Path  # our maintainer's SSH private key
    other_ssh: Path  # the other maintainer's
    gnupg: Path  # a GNUPGHOME holding our maintainer's PGP key
    pgp_fingerprint: str
    pgp_public: str


def make_keys(directory: Path) -> Keys:
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("test-ssh-ed25519", "test-other-ssh-ed25519"):
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                name,
                "-f",
                str(directory / name),
            ],
            check=True,
        )
    home = directory / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--no-tty", "--quiet"]
    subprocess.run(
        [
            *gpg,
            "--passphrase",
            "",
            "--quick-gen-key",
            "Autopeer Test <test@example.invalid>",
            "ed25519",
            "sign",
            "never",
        ],
        check=True,
        capture_output=True,
    )
    listing = subprocess.run(
        [*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True
    ).stdout
    fingerprint = next(
        line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
    )
    public = subprocess.run(
        [*gpg, "--armor", "--export", fingerprint], check=True, capture_output=True, text=True
    ).stdout
    return Keys(
        directory / "test-ssh-ed25519",
        directory / "test-other-ssh-ed25519",
        home,
        fingerprint,
        public,
    )


def make_registry(directory: Path, keys: Keys) -> Path:
    """A registry checkout with our ASN and maintainer and another operator's."""
    data = directory / "data"
    for sub in ("aut-num", "mntner", "route", "route6"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    ours = " ".join(Path(f"{keys.ssh}.pub").read_text().split()[:2])
    theirs = " ".join(Path(f"{keys.other_ssh}.pub").read_text().split()[:2])
    fpr = " ".join(keys.pgp_fingerprint[i : i + 4] for i in range(0, 40, 4))
    (data / "aut-num" / f"AS{ASN}").write_text(
        f"aut-num:            AS{ASN}\nas-name:            TEST-AUTOPEER\n"
        f"mnt-by:             {MNTNER}\nsource:             DN42\n"
    )
    (data / "aut-num" / f"AS{OTHER_ASN}").write_text(
        f"aut-num:            AS{OTHER_ASN}\nas-name:            TEST-OTHER\n"
        f"mnt-by:             {OTHER_MNTNER}\nsource:             DN42\n"
    )
    (data / "mntner" / MNTNER).write_text(
        f"mntner:             {MNTNER}\nauth:               {ours}\n"
        f"auth:               pgp-fingerprint {fpr}\n"
        f"mnt-by:             {MNTNER}\nsource:             DN42\n"
    )
    (data / "mntner" / OTHER_MNTNER).write_text(
        f"mntner:             {OTHER_MNTNER}\nauth:               {theirs}\n"
        f"mnt-by:             {OTHER_MNTNER}\nsource:             DN42\n"
    )
    return directory


def ssh_sign(key: Path, text: str, work: Path) -> str:
    message = work / "challenge.txt"
    message.write_text(text)
    signature = Path(f"{message}.sig")
    signature.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-n", NAMESPACE, "-f", str(key), str(message)],
        check=True,
        capture_output=True,
    )
    return signature.read_text()


def pgp_sign(keys: Keys, text: str, work: Path) -> str:
    message = work / "challenge.txt"
    message.write_text(text)
    result = subprocess.run(
        [
            "gpg",
            "--homedir",
            str(keys.gnupg),
            "--batch",
            "--no-tty",
            "--quiet",
            "--armor",
            "--detach-sign",
            "--output",
            "-",
            str(message),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def state_dir(root: Path, registry: Path) -> Path:
    state = root / "state"
    for sub in ("spool", "status", "challenges"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "registry").symlink_to(registry)
    return state


@contextmanager
def running(config: WebConfig, trusted: tuple[str, ...] = ()) -> Iterator[AutopeerServer]:
    server = AutopeerServer(("127.0.0.1", 0), Web(config), trusted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        assert self.headers.get("content-type") == "application/json", self.headers
        return json.loads(self.body)


def call(
    server: AutopeerServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    sent = {"Content-Type": "application/json"} if data is not None else {}
    sent.update(headers or {})
    try:
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        return Reply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()


def status_file(state: Path, asn: int, status: dict[str, Any]) -> None:
    """What the apply unit writes for the web service to show (status/<asn>.json)."""
    path = state / "status" / f"{asn}.json"
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps({"asn": asn, **status}))
    os.replace(temp, path)


def spool_entries(state: Path) -> list[dict[str, Any]]:
    spool = state / "spool"
    return [json.loads(p.read_text()) for p in sorted(spool.glob("*.json"))]


def request(asn: int = ASN, **fields: Any) -> dict[str, Any]:
    return {"asn": asn, "public_key": WG_KEY, "neighbor": "fe80::999", **fields}
