"""Overlaps, the tunnel MTU and the BGP receive and import limits."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ibgp_tunnel.doctor.checks.common import (
    IMPORT_LIMIT_WARN,
    IPV6_MIN_MTU,
    WG_OVERHEAD,
    bird_down,
)
from ibgp_tunnel.doctor.expect import Expectations, SessionExpect, TunnelExpect
from ibgp_tunnel.doctor.live import Live
from ibgp_tunnel.doctor.parse_bird import Channel
from ibgp_tunnel.doctor.parse_wg import endpoint_address
from ibgp_tunnel.doctor.result import Check, fail, ok, warn

# --- overlaps, MTU, import limits ----------------------------------------------------------


def check_overlaps(exp: Expectations, live: Live) -> list[Check]:
    if live.links is None:
        return []
    checks = []
    tunnel_names = set(exp.tunnel_names)
    for tunnel in exp.tunnels:
        for ip in tunnel.ips:
            network = ipaddress.ip_interface(ip).network
            clashes = [
                f"{link.name} {address}"
                for link in live.links.values()
                if link.name not in tunnel_names
                for address in link.addresses
                if address.version == network.version
                and not address.ip.is_link_local
                and not address.ip.is_loopback
                and address.network.overlaps(network)
            ]
            name = f"tunnel.overlap {tunnel.interface} {network}"
            if not clashes:
                checks.append(ok(name, f"{network} is used by the tunnel only"))
                continue
            checks.append(
                fail(
                    name,
                    f"the tunnel subnet {network} overlaps {', '.join(clashes)}: packets for "
                    "one may go out the other",
                    ", ".join(clashes),
                    f"renumber that interface, or give the tunnel another subnet in the plan "
                    f"([links.{tunnel.link or '...'}] ipv4/ipv6) and redeploy both ends",
                )
            )
    return checks


def _path_device(tunnel: TunnelExpect, live: Live) -> tuple[str | None, str | None]:
    wg = (live.wireguard or {}).get(tunnel.interface)
    endpoints = [p.endpoint for p in (wg.peers if wg else ()) if p.endpoint]
    endpoints += [p.endpoint for p in tunnel.peers if p.endpoint]
    for endpoint in endpoints:
        address = endpoint_address(endpoint)
        device = live.route_devices.get(address)
        if device:
            return address, device
    return None, None


def check_mtu(exp: Expectations, live: Live) -> list[Check]:
    if live.links is None:
        return []
    checks = []
    for tunnel in exp.tunnels:
        link = live.links.get(tunnel.interface)
        if link is None:
            continue
        name = f"tunnel.mtu {tunnel.interface}"
        if tunnel.global_ipv6 and link.mtu < IPV6_MIN_MTU:
            checks.append(
                fail(
                    name,
                    f"{tunnel.interface}'s MTU {link.mtu} is below IPv6's minimum "
                    f"{IPV6_MIN_MTU}: the kernel turns IPv6 off on it",
                    f"{tunnel.interface} mtu {link.mtu}",
                    f"`ip link set {tunnel.interface} mtu 1420` (or the path's MTU minus 80); "
                    f"on NixOS networking.wireguard.interfaces.{tunnel.interface}.mtu",
                )
            )
            continue
        address, device = _path_device(tunnel, live)
        path = live.links.get(device) if device else None
        if address is None or path is None:
            checks.append(ok(name, f"{tunnel.interface} mtu {link.mtu} (path not known)"))
            continue
        overhead = WG_OVERHEAD[ipaddress.ip_address(address).version]
        fits = path.mtu - overhead
        if link.mtu <= fits:
            checks.append(ok(name, f"{tunnel.interface} mtu {link.mtu} fits {device}'s {path.mtu}"))
            continue
        checks.append(
            fail(
                name,
                f"{tunnel.interface}'s MTU {link.mtu} is too big for the path: with "
                f"WireGuard's {overhead} bytes a full packet is {link.mtu + overhead}, "
                f"{device} carries {path.mtu}, so large packets through the tunnel are "
                "fragmented or lost",
                f"{tunnel.interface} mtu {link.mtu}; route to {address} via {device} mtu "
                f"{path.mtu}",
                f"`ip link set {tunnel.interface} mtu {fits}` now and "
                f"networking.wireguard.interfaces.{tunnel.interface}.mtu = {fits} on NixOS, "
                f"or raise {device}'s MTU back",
            )
        )
    return checks


@dataclass(frozen=True)
class _Limit:
    kind: str  # import, receive
    value: int
    hit: bool
    action: str
    count: int  # the routes BIRD counts against it


def _channel_limits(channel: Channel) -> list[_Limit]:
    limits = []
    if channel.receive_limit is not None:
        # BIRD counts what it keeps: accepted routes and those kept filtered.
        kept = (channel.imported or 0) + (channel.filtered or 0)
        limits.append(
            _Limit(
                "receive",
                channel.receive_limit,
                channel.receive_limit_hit,
                channel.receive_limit_action,
                kept,
            )
        )
    if channel.import_limit is not None:
        limits.append(
            _Limit(
                "import",
                channel.import_limit,
                channel.import_limit_hit,
                channel.import_limit_action,
                channel.imported or 0,
            )
        )
    return limits


def _raise_fix(exp: Expectations, session: SessionExpect, kind: str) -> str:
    """Where the limit is set: a DN42 peer's own, else the sessions' [tuning]."""
    if session.dn42_peer is None:
        return (
            f"raise [tuning] {kind}_limit in the plan (services.ibgpTunnel.tuning."
            f"{kind}Limit) and redeploy"
        )
    peer = session.dn42_peer
    return (
        f"raise {kind}_limit in [hosts.{exp.host}.dn42_peers.{peer}] "
        f"(services.ibgpTunnel.dn42Peers.{peer}.{kind}Limit) and redeploy"
    )


def _who(session: SessionExpect) -> str:
    if session.dn42_peer is not None:
        return f"DN42 peer {session.dn42_peer} (AS{session.neighbor_as})"
    return session.peer_host or session.neighbor


def _limit_check(exp: Expectations, session: SessionExpect, channel: str, limit: _Limit) -> Check:
    name = f"bgp.{limit.kind}-limit {session.protocol} {channel}"
    action = limit.action or "block"
    if limit.hit:
        return fail(
            name,
            f"{session.protocol}'s {channel} {limit.kind} limit ({limit.value}) is hit: BIRD "
            + (
                "keeps the routes it has and drops every new one"
                if action == "block"
                else f"acts on it ({action})"
            ),
            f"{limit.kind.capitalize()} limit: {limit.value} [HIT], {limit.count} counted, "
            f"action {action}",
            f"{_who(session)} sends more {channel} routes than the plan allows: if they are "
            f"legitimate, {_raise_fix(exp, session, limit.kind)}, then `birdc restart "
            f"{session.protocol}` (BIRD keeps the mark, and never asks again for what it "
            "dropped, until the session restarts); if not (a leak), ask the peer to "
            "fix its export filter",
        )
    if limit.count >= IMPORT_LIMIT_WARN * limit.value:
        return warn(
            name,
            f"{session.protocol}'s {channel} holds {limit.count} of at most {limit.value} "
            f"routes ({limit.kind} limit)",
            f"{limit.kind.capitalize()} limit: {limit.value}",
            f"{_raise_fix(exp, session, limit.kind)} before it blocks routes",
        )
    return ok(name, f"{limit.count} of at most {limit.value} routes ({limit.kind} limit)")


def check_import_limits(exp: Expectations, live: Live) -> list[Check]:
    """Each channel's receive and import limit (BIRD's own [HIT] mark), naming
    the peer, the family, the limit and where the plan sets it."""
    if bird_down(live):
        return []
    checks = []
    for session in exp.sessions:
        row = live.protocols.get(session.protocol)
        if row is None:
            continue
        for channel in row.channels.values():
            for limit in _channel_limits(channel):
                checks.append(_limit_check(exp, session, channel.name, limit))
    return checks
