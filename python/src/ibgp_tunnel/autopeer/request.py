"""A peering request: what a DN42 operator asks for, the same data as a DN42
peer in the plan (`[hosts.<h>.dn42_peers.<p>]`'s keys). This model checks only
what must hold before the data may travel to the Nix core at all (types, no
unknown keys, no NUL byte, bounded sizes); the core's own grammars and rules
decide the rest (render.py), so nothing is validated twice with two rule sets."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ibgp_tunnel.autopeer.errors import AutopeerRefused

# Longer than any value a grammar admits (tokens.nix's maxLength is 512), so
# a value is refused here only when it is hopeless.
MAX_TEXT = 512
# JSON numbers beyond this cannot be integers to Nix (a 64-bit int); the
# core refuses anything outside each field's own range.
MAX_INT = 2**53

FIELDS = ("asn", "public_key", "neighbor", "endpoint", "peer_ipv4", "mtu")


class PeeringRequest(BaseModel):
    """One request, keyed as the plan keys a DN42 peer."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    asn: int
    public_key: str
    neighbor: str
    endpoint: str | None = None
    peer_ipv4: str | None = None
    mtu: int | None = None

    @field_validator("public_key", "neighbor", "endpoint", "peer_ipv4")
    @classmethod
    def _travels(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("holds a NUL byte")
        if value is not None and len(value) > MAX_TEXT:
            raise ValueError(f"is {len(value)} characters long, far more than the field takes")
        return value

    @field_validator("asn", "mtu")
    @classmethod
    def _fits(cls, value: int | None) -> int | None:
        if value is not None and abs(value) > MAX_INT:
            raise ValueError("is out of range")
        return value

    def plan_keys(self) -> dict[str, Any]:
        """The request as the core takes it: plan keys, unset ones left out."""
        return self.model_dump(exclude_none=True)

    def digest(self) -> str:
        """sha256 of the canonical JSON: what a challenge binds the signature to."""
        text = json.dumps(self.plan_keys(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def parse_request(data: object) -> PeeringRequest:
    """A request from a stranger's JSON, or AutopeerRefused naming the field."""
    if not isinstance(data, dict):
        raise AutopeerRefused(
            "the request is not a JSON object: give asn, public_key and neighbor", "request"
        )
    try:
        return PeeringRequest.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        location = first.get("loc") or ()
        field = str(location[0]) if location and str(location[0]) in FIELDS else "request"
        raise AutopeerRefused(_message(first, field), field) from None


def _message(error: Any, field: str) -> str:
    kind = str(error.get("type", ""))
    if kind == "extra_forbidden":
        return f"the request has a field a peering request does not: give only {', '.join(FIELDS)}"
    if kind == "missing":
        return f"{field} is missing: a peering request needs asn, public_key and neighbor"
    if kind.startswith("int") or kind.startswith("bool"):
        return f"{field} must be a whole number"
    if kind.startswith("string"):
        return f"{field} must be a string"
    reason = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    return f"{field} {reason}"
