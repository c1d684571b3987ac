"""Forwarding: kernel routes, sysctls, forward rules, NAT, reverse-path filtering,
router advertisements and the IPv6 next hop (the write-up's pitfall 4)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ibgp_tunnel.doctor.checks.common import (
    REDEPLOY,
    bird_down,
    other_interface,
    verdict_evidence,
)
from ibgp_tunnel.doctor.expect import Expectations
from ibgp_tunnel.doctor.live import Live
from ibgp_tunnel.doctor.nft_eval import Packet, evaluate, walk_hooks
from ibgp_tunnel.doctor.parse_sysctl import interface_key
from ibgp_tunnel.doctor.result import Check, fail, ok, warn

# --- routes in the kernel ----------------------------------------------------------------


def check_kernel_routes(exp: Expectations, live: Live) -> list[Check]:
    if bird_down(live) or live.routes is None:
        return []
    checks = []
    for row in live.protocols.values():
        if row.proto != "Kernel":
            continue
        for channel in row.channels.values():
            if channel.exported is None:
                continue
            family = channel.name
            in_kernel = sum(1 for r in live.routes.get(family, []) if r.protocol == "bird")
            name = f"routes.kernel {row.name}"
            evidence = f"BIRD exported {channel.exported}, the kernel has {in_kernel} proto bird"
            if in_kernel >= channel.exported:
                checks.append(
                    ok(name, f"{in_kernel} {family} routes from BIRD in the kernel", evidence)
                )
                continue
            checks.append(
                fail(
                    name,
                    f"BIRD sent {channel.exported} {family} routes to the kernel, only "
                    f"{in_kernel} are there: traffic to the rest does not take the tunnel",
                    evidence,
                    f"something removes them (another routing daemon, a script flushing routes) "
                    f"or the kernel refused them: `birdc reload out {row.name}` puts them back; "
                    "check `journalctl -u bird` for kernel errors",
                )
            )
    return checks


# --- forwarding, NAT, reverse path -----------------------------------------------------


def check_forwarding_sysctl(exp: Expectations, live: Live) -> list[Check]:
    checks = []
    for key, wanted in exp.sysctl.items():
        if key.endswith(".accept_ra"):
            continue  # judged by check_accept_ra: it matters only where RAs give a route
        have = live.sysctl.get(key)
        name = f"sysctl {key}"
        if have == wanted:
            checks.append(ok(name, f"{key} = {have}"))
        elif have is None:
            checks.append(warn(name, f"cannot read {key}", "not in sysctl's output", ""))
        else:
            checks.append(
                fail(
                    name,
                    f"{key} is {have}, the plan needs {wanted}: this host does not forward "
                    "traffic between the tunnel and its LAN/uplink",
                    f"{key} = {have}",
                    f"`sysctl -w {key}={wanted}` now; the module sets it in boot.kernel.sysctl: "
                    f"{REDEPLOY}",
                )
            )
    return checks


def check_forward_rules(exp: Expectations, live: Live) -> list[Check]:
    if live.ruleset is None:
        return []
    checks = []
    for rule in exp.forward_rules:
        other = other_interface(exp, live, rule.interface)
        iif, oif = (
            (rule.interface, other) if rule.direction == "iifname" else (other, rule.interface)
        )
        name = f"firewall.forward {iif} -> {oif}"
        sources: list[tuple[str, str | None]] = [("ipv4", None), ("ipv6", None)]
        if exp.role == "client" and iif in exp.tunnel_names:
            # Out of a client's tunnels, new connections come from the plan's own
            # networks (DN42 meets a drop by design, render/nftables.nix).
            sources = list(exp.internal_sources.items())
            if not sources:
                checks.append(
                    ok(name, f"only replies leave {iif} (the plan gives no internal networks)")
                )
                continue
        verdicts = [
            evaluate(live.ruleset, Packet("forward", family, "tcp", None, iif, oif, saddr=saddr))
            for family, saddr in sources
        ]
        dropped = [v for v in verdicts if v.action == "drop"]
        if not dropped:
            checks.append(ok(name, f"new connections from {iif} to {oif} are forwarded"))
            continue
        effect = "nothing gets into" if oif in exp.tunnel_names else "nothing gets out of"
        checks.append(
            fail(
                name,
                f"the firewall drops traffic forwarded from {iif} to {oif}, so {effect} the "
                "tunnel (write-up pitfall 2)",
                verdict_evidence(dropped[0]),
                f"add `{rule.text}` to the forward chain: the module puts it into "
                f"networking.firewall.extraForwardRules (with networking.firewall.filterForward); "
                f"{REDEPLOY}. By hand: `nft add rule inet nixos-fw forward-allow {rule.text}`",
            )
        )
    return checks


def check_masquerade(exp: Expectations, live: Live) -> list[Check]:
    if live.ruleset is None:
        return []
    checks = []
    for rule in exp.masquerade:
        for iif in rule.iifnames:
            for oif in rule.oifnames:
                families = "/".join(rule.nfprotos)
                name = f"firewall.masquerade {iif} -> {oif} {families}"
                verdicts = [
                    evaluate(
                        live.ruleset,
                        Packet(
                            "postrouting",
                            family,
                            "tcp",
                            None,
                            iif,
                            oif,
                            saddr=_source_outside(family, rule.excluded),
                        ),
                    )
                    for family in rule.nfprotos
                ]
                missing = [v for v in verdicts if v.action not in ("masquerade", "snat")]
                if not missing:
                    checks.append(ok(name, f"traffic from {iif} out of {oif} is masqueraded"))
                    continue
                why = (
                    "the reflector's WireGuard accepts only this host's tunnel addresses and "
                    "drops it"
                    if oif in exp.tunnel_names
                    else f"it leaves {oif} with a tunnel address nobody routes back"
                )
                checks.append(
                    fail(
                        name,
                        f"traffic from {iif} out of {oif} is not masqueraded: {why} "
                        "(write-up pitfall 3)",
                        f"no masquerade rule matches in postrouting; expected `{rule.text}` in "
                        f"table {exp.nft_table}"
                        + (
                            ""
                            if _has_table(live, exp.nft_table)
                            else f" ({exp.nft_table} is not loaded)"
                        ),
                        f"load the rendered table {exp.nft_table}: {REDEPLOY} "
                        "(networking.nftables); by hand: `ibgp-tunnel render PLAN HOST "
                        "--format nft > t.nft && nft -f t.nft`",
                    )
                )
    return checks


# Documentation addresses: a source no rendered exclusion (a client's own prefixes) covers.
_PROBE_SOURCES = {
    "ipv4": ("192.0.2.10", "198.51.100.10", "203.0.113.10"),
    "ipv6": ("2001:db8::10", "2001:db8:ffff::10"),
}


def _source_outside(family: str, excluded: tuple[str, ...]) -> str:
    """A source address the masquerade rule must rewrite: outside every prefix the
    rendered rule leaves alone."""
    networks = []
    for prefix in excluded:
        try:
            networks.append(ipaddress.ip_network(prefix, strict=False))
        except ValueError:
            continue
    for candidate in _PROBE_SOURCES[family]:
        address = ipaddress.ip_address(candidate)
        if not any(address.version == n.version and address in n for n in networks):
            return candidate
    return _PROBE_SOURCES[family][0]


def _has_table(live: Live, table: str) -> bool:
    family, _, name = table.partition(" ")
    return live.ruleset is not None and (family, name) in live.ruleset.tables


def _effective_rp_filter(live: Live, interface: str) -> int | None:
    values = [
        live.sysctl.get(interface_key("ipv4", scope, "rp_filter")) for scope in ("all", interface)
    ]
    known = [int(v) for v in values if v is not None and v.isdigit()]
    return max(known) if known else None


def check_rp_filter(exp: Expectations, live: Live) -> list[Check]:
    checks = []
    for tunnel in exp.tunnels:
        name = f"rp_filter {tunnel.interface}"
        value = _effective_rp_filter(live, tunnel.interface)
        own_key = interface_key("ipv4", tunnel.interface, "rp_filter")
        all_key = "net.ipv4.conf.all.rp_filter"
        if value == 1:
            checks.append(
                fail(
                    name,
                    f"strict reverse-path filtering (rp_filter=1) on {tunnel.interface} drops "
                    "tunnel packets whose source this host routes another way (return traffic "
                    "of asymmetric paths, sources outside the kernel export sets)",
                    f"{all_key} = {live.sysctl.get(all_key)}, "
                    f"{own_key} = {live.sysctl.get(own_key)}",
                    f"use loose mode: `sysctl -w {own_key}=2` "
                    'now, and boot.kernel.sysctl."net.ipv4.conf.all.rp_filter" = 2 on NixOS '
                    "(networking.firewall.checkReversePath does the strict check in nftables, "
                    "where the module exempts the tunnel)",
                )
            )
        else:
            checks.append(
                ok(name, f"the kernel's rp_filter is {value if value is not None else 'unknown'}")
            )
    if live.ruleset is None:
        return checks
    for rule in exp.reverse_path_rules:
        name = f"firewall.rpfilter {rule.interface}"
        verdicts = [
            walk_hooks(
                live.ruleset,
                Packet("prerouting", family, "tcp", None, rule.interface, fib_ok=False),
                ("prerouting",),
            )
            for family in ("ipv4", "ipv6")
        ]
        dropped = [v for v in verdicts if v.action == "drop"]
        if not dropped:
            checks.append(
                ok(name, f"the reverse-path filter lets asymmetric {rule.interface} traffic in")
            )
            continue
        checks.append(
            fail(
                name,
                f"the firewall's reverse-path filter drops packets from {rule.interface} whose "
                "source this host routes another way",
                verdict_evidence(dropped[0]),
                f"exempt the tunnel: `{rule.text}` belongs in "
                "networking.firewall.extraReversePathFilterRules (the module puts it there); "
                f"{REDEPLOY}",
            )
        )
    return checks


def check_accept_ra(exp: Expectations, live: Live) -> list[Check]:
    if live.sysctl.get("net.ipv6.conf.all.forwarding") != "1" or live.routes is None:
        return []
    checks = []
    for route in live.routes.get("ipv6", []):
        if route.dst != "default" or route.protocol != "ra" or not route.dev:
            continue
        key = interface_key("ipv6", route.dev, "accept_ra")
        if live.sysctl.get(key) == "1":
            checks.append(
                warn(
                    f"sysctl {key}",
                    f"IPv6 forwarding is on, so the kernel ignores router advertisements on "
                    f"{route.dev} (accept_ra=1): its IPv6 default route expires",
                    f"{key} = 1; default route via {route.gateway} proto ra",
                    f'`sysctl -w {key}=2`; on NixOS boot.kernel.sysctl."{key}" = 2',
                )
            )
    flagged = {check.id for check in checks}
    for key, wanted in exp.sysctl.items():
        have = live.sysctl.get(key)
        if key.endswith(".accept_ra") and f"sysctl {key}" not in flagged and have != wanted:
            checks.append(
                warn(
                    f"sysctl {key}",
                    f"{key} is {have}, the plan sets {wanted}: with forwarding on, an uplink "
                    "that gets its IPv6 default route by SLAAC would lose it",
                    f"{key} = {have}",
                    f"`sysctl -w {key}={wanted}`; the module sets it in boot.kernel.sysctl: "
                    f"{REDEPLOY}",
                )
            )
    return checks


# --- the IPv6 next hop (pitfall 4) ----------------------------------------------------


def _global_ipv6(addresses: Iterable[str]) -> list[str]:
    found = []
    for text in addresses:
        try:
            address = ipaddress.ip_address(text.split("%")[0])
        except ValueError:
            continue
        if address.version == 6 and not address.is_link_local and not address.is_unspecified:
            found.append(text)
    return found


def check_ipv6_routes(exp: Expectations, live: Live) -> list[Check]:
    if bird_down(live):
        return []
    checks = []
    for session in exp.sessions:
        row = live.protocols.get(session.protocol)
        if not session.internal or row is None or row.state != "up":
            continue
        name = f"bgp.ipv6-next-hop {session.protocol}"
        v6 = row.channels.get("ipv6")
        v4 = row.channels.get("ipv4")
        if v6 is None:
            continue
        peer = session.peer_host or session.neighbor
        if v6.exported and not _global_ipv6(v6.next_hop):
            checks.append(
                fail(
                    name,
                    f"BIRD sends IPv6 routes to {peer} without a global IPv6 next hop, so "
                    f"{peer} withdraws or blackholes them (write-up pitfall 4)",
                    f"IPv6 channel: BGP next hop {' '.join(v6.next_hop) or 'none'}",
                    f"give {session.interface} its global IPv6 from the plan and keep "
                    f"`next hop address {session.ipv6_next_hop or '<that address>'};` in the "
                    f"IPv6 channel (both rendered): {REDEPLOY}",
                )
            )
            continue
        peer_sends_v6 = bool(session.peer_host and exp.peers_announce_ipv6.get(session.peer_host))
        if peer_sends_v6 and v6.imported == 0 and (v4 is None or (v4.imported or 0) > 0):
            checks.append(
                fail(
                    name,
                    f"{peer} announces IPv6 prefixes but none arrive over {session.protocol} "
                    "while IPv4 routes do: IPv6 next hop missing on "
                    f"{peer} (write-up pitfall 4)",
                    f"IPv4 {v4.imported if v4 else '?'} imported, IPv6 0 imported",
                    f"{peer} needs a global IPv6 on its tunnel and `next hop address` in its IPv6 "
                    f"channel: deploy the plan to {peer} and run `ibgp-tunnel doctor` there",
                )
            )
            continue
        checks.append(
            ok(
                name,
                f"IPv6 routes flow ({v6.imported} in, {v6.exported} out, next hop "
                f"{' '.join(v6.next_hop) or '-'})",
            )
        )
    return checks
