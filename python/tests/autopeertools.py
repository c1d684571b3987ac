"""Test helpers for the autopeer web service: the fixture registry and its test
signers (the real ssh-keygen and gpg), the service on 127.0.0.1 with an
ephemeral port, and a small JSON client."""

from __future__ import annotations

import http.client
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import autopeer_signers as signers

from ibgp_tunnel.autopeer.server import AutopeerServer
from ibgp_tunnel.autopeer.web import Web, WebConfig

WG_KEY = "l0iLeIz5KG5W7Nq4yJ8vCDwdr9DyhYD5cGBTmF2LKFU="
# The auth part's fixture registry (python/tests/data/autopeer-registry): our
# signer holds ASN (an SSH key and a PGP key), another operator OTHER_ASN.
REGISTRY = signers.FIXTURE
ASN = signers.ASN
OTHER_ASN = signers.OTHER_ASN
OURS = "test-ssh-ed25519"
THEIRS = "test-other-ssh-ed25519"


def ssh_sign(text: str, key: str = OURS) -> str:
    return signers.ssh_sign(text.encode(), key)


def pgp_sign(text: str) -> str:
    return signers.gpg_sign(text.encode())


def state_dir(root: Path, registry: Path = REGISTRY) -> Path:
    state = root / "state"
    for sub in ("spool", "status", "challenges"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    # Where the units read it: the checkout below the refresh's own directory.
    checkout = state / "registry" / "dn42"
    checkout.parent.mkdir()
    checkout.symlink_to(registry)
    return state


@contextmanager
def running(
    config: WebConfig, trusted: tuple[str, ...] = (), **options: Any
) -> Iterator[AutopeerServer]:
    server = AutopeerServer(("127.0.0.1", 0), Web(config), trusted, **options)
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
