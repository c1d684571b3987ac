"""`wg show all dump`: interfaces and their peers.

The dump is tab-separated. An interface line has 5 fields (interface, private
key, public key, listen port, fwmark); a peer line has 9 (interface, public key,
preshared key, endpoint, allowed IPs, latest handshake, rx, tx, keepalive).
Private and preshared keys are dropped here, before anything keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass

HIDDEN = "(hidden)"


@dataclass(frozen=True)
class WgPeer:
    interface: str
    public_key: str
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    latest_handshake: int  # unix time; 0 = never
    rx_bytes: int
    tx_bytes: int
    keepalive: int | None

    def handshake_age(self, now: float) -> float | None:
        """Seconds since the latest handshake, or None when there was none."""
        return None if self.latest_handshake == 0 else max(0.0, now - self.latest_handshake)


@dataclass(frozen=True)
class WgInterface:
    name: str
    public_key: str
    listen_port: int | None
    peers: tuple[WgPeer, ...]


def _none(value: str) -> str | None:
    return None if value in ("(none)", "off", "") else value


def parse_wg_dump(text: str) -> dict[str, WgInterface]:
    """Interfaces by name, each with its peers, from `wg show all dump`."""
    heads: dict[str, tuple[str, int | None]] = {}
    peers: dict[str, list[WgPeer]] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) == 5:
            port = _none(fields[3])
            heads[fields[0]] = (fields[2], int(port) if port and port.isdigit() else None)
            peers.setdefault(fields[0], [])
        elif len(fields) == 9:
            allowed = _none(fields[4])
            keepalive = _none(fields[8])
            peers.setdefault(fields[0], []).append(
                WgPeer(
                    interface=fields[0],
                    public_key=fields[1],
                    endpoint=_none(fields[3]),
                    allowed_ips=tuple(allowed.split(",")) if allowed else (),
                    latest_handshake=int(fields[5]) if fields[5].isdigit() else 0,
                    rx_bytes=int(fields[6]) if fields[6].isdigit() else 0,
                    tx_bytes=int(fields[7]) if fields[7].isdigit() else 0,
                    keepalive=int(keepalive) if keepalive and keepalive.isdigit() else None,
                )
            )
    return {
        name: WgInterface(name, public, port, tuple(peers.get(name, ())))
        for name, (public, port) in heads.items()
    }


def redact_dump(text: str) -> str:
    """The dump without secrets: the private key (interface lines) and the preshared
    key (peer lines) become "(hidden)", so saved outputs never hold them."""
    lines = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) == 5:
            fields[1] = HIDDEN
        elif len(fields) == 9 and fields[2] != "(none)":
            fields[2] = HIDDEN
        lines.append("\t".join(fields))
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def endpoint_address(endpoint: str) -> str:
    """The address of `host:port` or `[v6]:port`."""
    if endpoint.startswith("["):
        return endpoint[1 : endpoint.index("]")]
    return endpoint.rsplit(":", 1)[0]
