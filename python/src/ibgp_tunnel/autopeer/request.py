"""A peering request: the same data as a DN42 peer in the plan (the thinnest
version under the design's contract, written by the web part to test against;
the core part's fuller one replaces it)."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict


class PeeringRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    asn: int
    public_key: str
    endpoint: str | None = None
    neighbor: str
    peer_ipv4: str | None = None
    mtu: int | None = None

    def digest(self) -> str:
        """sha256 of the canonical JSON (sorted keys, no spaces, nulls left out)."""
        text = json.dumps(self.model_dump(exclude_none=True), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()
