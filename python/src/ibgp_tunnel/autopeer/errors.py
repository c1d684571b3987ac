"""The one error a peering request is refused with."""

from __future__ import annotations

from ibgp_tunnel.errors import InputError


class AutopeerRefused(InputError):
    """A request refused: the message is for the requester (a stranger), names the
    field and the fix, and never echoes more of their input than it needs to."""

    def __init__(self, message: str, field: str = "", *, details: str = "") -> None:
        super().__init__(message, details=details)
        self.field = field
