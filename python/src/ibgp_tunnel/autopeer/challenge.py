"""One-time challenges (the thinnest version under the design's contract, written
by the web part to test against; the auth part's fuller one replaces it)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ibgp_tunnel.autopeer.errors import AutopeerRefused

SERVICE = "ibgp-tunnel autopeer"


@dataclass(frozen=True)
class Challenge:
    id: str
    text: str
    expires: float


class ChallengeStore:
    def __init__(self, directory: Path, host: str = "localhost") -> None:
        self.directory = directory
        self.host = host
        directory.mkdir(parents=True, exist_ok=True)

    def issue(self, asn: int, op: str, request_digest: str, now: float, ttl: int) -> Challenge:
        nonce = secrets.token_urlsafe(24)
        expires = now + ttl
        text = (
            f"{SERVICE} challenge\nhost: {self.host}\nasn: AS{asn}\nop: {op}\n"
            f"request: sha256:{request_digest}\nnonce: {nonce}\n"
            f"expires: {datetime.fromtimestamp(expires, UTC).isoformat(timespec='seconds')}\n"
        )
        record = {"asn": asn, "op": op, "digest": request_digest, "text": text, "expires": expires}
        path = self.directory / f"{nonce}.json"
        with open(path, "x", encoding="utf-8") as handle:
            json.dump(record, handle)
        return Challenge(nonce, text, expires)

    def consume(self, id: str, asn: int, op: str, request_digest: str, now: float) -> Challenge:
        path = self.directory / f"{id}.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise AutopeerRefused("challenge_id: unknown or already used", "challenge_id") from None
        if record["expires"] <= now:
            raise AutopeerRefused("challenge_id: expired; request a new one", "challenge_id")
        if (record["asn"], record["op"], record["digest"]) != (asn, op, request_digest):
            raise AutopeerRefused("challenge_id: issued for another request", "challenge_id")
        try:
            # Claimed by a rename: of two consumers exactly one succeeds.
            os.rename(path, self.directory / f"{id}.used")
        except FileNotFoundError:
            raise AutopeerRefused("challenge_id: already used", "challenge_id") from None
        return Challenge(id, record["text"], record["expires"])
