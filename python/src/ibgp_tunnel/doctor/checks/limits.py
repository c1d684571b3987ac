"""Overlaps, the tunnel MTU and the import limits."""

from __future__ import annotations

import ipaddress

from ibgp_tunnel.doctor.checks.common import (
    IMPORT_LIMIT_WARN,
    IPV6_MIN_MTU,
    WG_OVERHEAD,
    bird_down,
)
from ibgp_tunnel.doctor.expect import Expectations, TunnelExpect
from ibgp_tunnel.doctor.live import Live
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


def check_import_limits(exp: Expectations, live: Live) -> list[Check]:
    if bird_down(live):
        return []
    checks = []
    for session in exp.sessions:
        row = live.protocols.get(session.protocol)
        if row is None:
            continue
        for channel in row.channels.values():
            if channel.import_limit is None:
                continue
            name = f"bgp.import-limit {session.protocol} {channel.name}"
            imported = channel.imported or 0
            if channel.import_limit_hit:
                checks.append(
                    fail(
                        name,
                        f"{session.protocol}'s {channel.name} import limit "
                        f"({channel.import_limit}) is hit: BIRD "
                        + (
                            "drops every route past it"
                            if channel.import_limit_action in ("block", "")
                            else f"acts on it ({channel.import_limit_action})"
                        ),
                        f"Import limit: {channel.import_limit} [HIT], {imported} imported, "
                        f"action {channel.import_limit_action or 'block'}",
                        f"{session.peer_host or session.neighbor} sends more routes than the "
                        "plan allows: raise [tuning] import_limit in the plan "
                        "(services.ibgpTunnel.tuning.importLimit) and redeploy, or find out "
                        "why the peer sends so many",
                    )
                )
            elif imported >= IMPORT_LIMIT_WARN * channel.import_limit:
                checks.append(
                    warn(
                        name,
                        f"{session.protocol}'s {channel.name} imports {imported} of at most "
                        f"{channel.import_limit} routes",
                        f"Import limit: {channel.import_limit}",
                        "raise [tuning] import_limit before it blocks routes",
                    )
                )
            else:
                checks.append(
                    ok(name, f"{imported} of at most {channel.import_limit} routes imported")
                )
    return checks
