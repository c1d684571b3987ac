"""The live state, parsed: every tool's output read once into typed records.

A read that failed (tool missing, BIRD down, no permission) leaves its field None
and its error text in `errors`, so checks can say why they could not look.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ibgp_tunnel.doctor.collect import Snapshot
from ibgp_tunnel.doctor.parse_bird import (
    BfdSession,
    BirdStatus,
    Protocol,
    parse_bfd_sessions,
    parse_protocols,
    parse_route_count,
    parse_status,
)
from ibgp_tunnel.doctor.parse_ip import Link, Route, parse_addresses, parse_routes, route_device
from ibgp_tunnel.doctor.parse_nft import Ruleset, parse_ruleset
from ibgp_tunnel.doctor.parse_sysctl import parse_sysctl
from ibgp_tunnel.doctor.parse_wg import WgInterface, parse_wg_dump
from ibgp_tunnel.errors import IbgpTunnelError


@dataclass
class Live:
    now: float
    bird: BirdStatus | None = None
    protocols: dict[str, Protocol] = field(default_factory=dict)
    route_count: dict[str, tuple[int, int]] = field(default_factory=dict)
    bfd: list[BfdSession] | None = None
    wireguard: dict[str, WgInterface] | None = None
    links: dict[str, Link] | None = None
    routes: dict[str, list[Route]] | None = None  # "ipv4"/"ipv6" -> main table
    ruleset: Ruleset | None = None
    sysctl: dict[str, str] = field(default_factory=dict)
    route_devices: dict[str, str | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def parse_snapshot(snapshot: Snapshot) -> Live:
    live = Live(now=snapshot.time)

    def text(key: str) -> str | None:
        output = snapshot.get(key)
        if not output.ok:
            live.errors[key] = output.error()
            return None
        return output.stdout

    try:
        status = text("bird_status")
        if status is not None:
            live.bird = parse_status(status)
            live.protocols = parse_protocols(text("bird_protocols") or "")
            live.route_count = parse_route_count(text("bird_route_count") or "")
            bfd = text("bird_bfd")
            live.bfd = parse_bfd_sessions(bfd) if bfd is not None else None
        wg = text("wg")
        live.wireguard = parse_wg_dump(wg) if wg is not None else None
        addresses = text("ip_addr")
        live.links = parse_addresses(addresses) if addresses is not None else None
        routes4, routes6 = text("ip_route4"), text("ip_route6")
        if routes4 is not None and routes6 is not None:
            live.routes = {"ipv4": parse_routes(routes4), "ipv6": parse_routes(routes6)}
        nft = text("nft")
        live.ruleset = parse_ruleset(nft) if nft is not None else None
        live.sysctl = parse_sysctl(text("sysctl") or "")
        for address, output in snapshot.route_get.items():
            live.route_devices[address] = route_device(output.stdout) if output.ok else None
    except IbgpTunnelError as error:
        live.errors["parse"] = str(error)
    return live
