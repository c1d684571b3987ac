"""What the picture shows, as plain records: hosts, DN42 peers, links and the
BGP sessions on them. source.py fills them from the Nix core's answer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Host:
    name: str
    role: str  # reflector or client
    router_id: str
    announce: tuple[str, ...]  # the prefixes it originates (ipv4, then ipv6)


@dataclass(frozen=True)
class LinkEnd:
    host: str
    interface: str
    addresses: tuple[str, ...]  # CIDR, as the host's tunnel interface carries them
    session: str | None  # the BIRD protocol this end runs over the link


@dataclass(frozen=True)
class Link:
    name: str  # the plan's [links.NAME]
    listener: LinkEnd  # the plan's `reflector` end: it listens
    dialer: LinkEnd  # the plan's `client` end: it dials the listener
    port: int | None  # the UDP port WireGuard listens on
    subnets: tuple[str, ...]
    between_reflectors: bool
    endpoint: str | None  # what the dialer dials


@dataclass(frozen=True)
class Dn42Peer:
    reflector: str
    name: str  # the plan's dn42_peers.NAME
    asn: int
    neighbor: str
    interface: str | None  # its WireGuard tunnel, if the plan runs one
    port: int | None
    session: str | None  # the BIRD protocol


@dataclass(frozen=True)
class PlanGraph:
    asn: int
    hosts: tuple[Host, ...]
    links: tuple[Link, ...]
    dn42_peers: tuple[Dn42Peer, ...]
