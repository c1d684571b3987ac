"""The checks: live state against what the plan says, root causes first.

`run_checks` runs them in an order where a cause comes before its symptoms:
BIRD running, then the tunnel (interface, keys, addresses), the firewall's
ports, the handshake, BIRD's sessions (with BIRD's own reason), BFD, graceful
restart recovery, routes in the kernel, forwarding/NAT/reverse-path filtering,
the IPv6 next hop (the write-up's pitfall 4), and last overlaps, MTU and import
limits. So the first failing line is the one to act on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from ibgp_tunnel.doctor.expect import Expectations, SessionExpect, TunnelExpect
from ibgp_tunnel.doctor.live import Live
from ibgp_tunnel.doctor.nft_eval import Packet, Verdict, evaluate, walk_hooks
from ibgp_tunnel.doctor.parse_bird import Protocol
from ibgp_tunnel.doctor.parse_nft import Ruleset
from ibgp_tunnel.doctor.parse_sysctl import interface_key
from ibgp_tunnel.doctor.parse_wg import endpoint_address
from ibgp_tunnel.doctor.result import Check, fail, ok, skip, warn

# WireGuard starts a new handshake every 2 minutes while packets flow (and BGP
# keepalives always flow): older than this, the tunnel carries nothing.
STALE_HANDSHAKE_SECONDS = 180
# Outer IP + UDP + WireGuard header: 60 bytes over IPv4, 80 over IPv6.
WG_OVERHEAD = {4: 60, 6: 80}
IPV6_MIN_MTU = 1280
IMPORT_LIMIT_WARN = 0.9
REDEPLOY = "deploy the plan to this host (nixos-rebuild switch)"

CheckFn = Callable[[Expectations, Live], list[Check]]


def _bird_down(live: Live) -> str | None:
    if live.bird is None or not live.bird.up:
        return "not checked: BIRD is not running (see bird.running)"
    return None


# --- BIRD ------------------------------------------------------------------------


def check_bird_running(exp: Expectations, live: Live) -> list[Check]:
    if live.bird is not None and live.bird.up:
        return [ok("bird.running", f"BIRD {live.bird.version} is up")]
    error = live.errors.get("bird_status", "BIRD did not say it is up")
    return [
        fail(
            "bird.running",
            "BIRD is not running, so no session and no route exists",
            f"birdc: {error}",
            "start it: `systemctl start bird` (`journalctl -u bird` says why it stopped; "
            "`bird -p -c /etc/bird/bird.conf` checks the config)",
        )
    ]


# --- the tunnel --------------------------------------------------------------------


def check_tunnel_interfaces(exp: Expectations, live: Live) -> list[Check]:
    checks = []
    for tunnel in exp.tunnels:
        name = f"wireguard.interface {tunnel.interface}"
        unit = f"wireguard-{tunnel.interface}"
        if live.wireguard is None:
            checks.append(
                fail(
                    name,
                    "cannot read WireGuard's state",
                    f"wg show all dump: {live.errors.get('wg', 'no output')}",
                    "run doctor as root on the host (wg needs it), with wireguard-tools installed",
                )
            )
            continue
        wg = live.wireguard.get(tunnel.interface)
        link = (live.links or {}).get(tunnel.interface)
        if wg is None or link is None:
            checks.append(
                fail(
                    name,
                    f"the tunnel interface {tunnel.interface} does not exist",
                    f"WireGuard interfaces: {', '.join(live.wireguard) or 'none'}",
                    f"start it: `systemctl restart {unit}` (`journalctl -u {unit}` says why "
                    "it failed; a missing key file is the usual reason)",
                )
            )
            continue
        if not link.up:
            checks.append(
                fail(
                    name,
                    f"{tunnel.interface} exists but is down",
                    f"{tunnel.interface}: not UP",
                    f"`ip link set {tunnel.interface} up`, or `systemctl restart {unit}`",
                )
            )
            continue
        if tunnel.listen_port is not None and wg.listen_port != tunnel.listen_port:
            checks.append(
                fail(
                    name,
                    f"{tunnel.interface} listens on UDP {wg.listen_port}, the plan says "
                    f"{tunnel.listen_port}, so its peer sends to a port nobody reads",
                    f"listening port {wg.listen_port}",
                    f"{REDEPLOY}, or `wg set {tunnel.interface} listen-port {tunnel.listen_port}`",
                )
            )
            continue
        checks.append(ok(name, f"{tunnel.interface} is up, listening on UDP {wg.listen_port}"))
    return checks


def _own_key_check(exp: Expectations, interface: str, running: str) -> Check:
    name = f"wireguard.own-key {interface}"
    if not exp.own_public_key:
        return warn(
            name,
            f"the plan has no public key for {exp.host}, so nothing can be compared",
            f"running public key {running}",
            f"run `ibgp-tunnel keys` (it writes hosts.{exp.host}.public_key into the plan)",
        )
    if running == exp.own_public_key:
        return ok(name, f"this host's public key matches {exp.key_source}")
    return fail(
        name,
        f"this host's WireGuard key is not the one {exp.key_source} gives {exp.host}, so "
        "every peer rejects its handshakes",
        f"running public key {running}, expected {exp.own_public_key}",
        "the private key file and the plan disagree: deploy the secrets that "
        f"`ibgp-tunnel keys` made for this host (sops file secrets/{exp.host}.yaml), or, if "
        "the key was rotated on purpose, run `ibgp-tunnel keys` so the plan gets the new "
        "public key and redeploy both ends",
    )


def check_keys(exp: Expectations, live: Live) -> list[Check]:
    checks = []
    for tunnel in exp.tunnels:
        wg = (live.wireguard or {}).get(tunnel.interface)
        if wg is None:
            continue
        # A DN42 tunnel runs the host's DN42 key, which the plan does not hold.
        if tunnel.link:
            checks.append(_own_key_check(exp, tunnel.interface, wg.public_key))
        running = {peer.public_key for peer in wg.peers}
        others = ", ".join(sorted(running)) or "none"
        for peer in tunnel.peers:
            name = f"wireguard.peer-key {tunnel.interface} {peer.name}"
            if not peer.public_key:
                checks.append(
                    fail(
                        name,
                        f"the plan has no public key for {peer.name}, so this host cannot "
                        f"know {peer.name}'s WireGuard key",
                        f"peers on {tunnel.interface}: {others}",
                        f"run `ibgp-tunnel keys` (it writes hosts.{peer.name}.public_key into "
                        "the plan) and deploy the plan to both hosts",
                    )
                )
            elif peer.public_key in running:
                checks.append(ok(name, f"{peer.name}'s public key matches {exp.key_source}"))
            else:
                checks.append(
                    fail(
                        name,
                        f"{tunnel.interface} has no peer with {peer.name}'s public key from "
                        f"{exp.key_source}, so {peer.name}'s handshakes are ignored",
                        f"peers on {tunnel.interface}: {others}; expected {peer.public_key}",
                        f"{REDEPLOY} so {tunnel.interface} gets the plan's peer key (by hand: "
                        f"`wg set {tunnel.interface} peer {peer.public_key} ...`); if "
                        f"{peer.name}'s key was rotated, run `ibgp-tunnel keys` first so the "
                        "plan has it",
                    )
                )
    return checks


def check_tunnel_addresses(exp: Expectations, live: Live) -> list[Check]:
    checks = []
    for tunnel in exp.tunnels:
        link = (live.links or {}).get(tunnel.interface)
        if link is None:
            continue
        name = f"tunnel.addresses {tunnel.interface}"
        present = {str(address) for address in link.addresses}
        missing = [ip for ip in tunnel.ips if str(ipaddress.ip_interface(ip)) not in present]
        if not missing:
            checks.append(ok(name, f"{tunnel.interface} has {', '.join(tunnel.ips)}"))
            continue
        v6 = [ip for ip in missing if ip in tunnel.global_ipv6]
        if v6:
            summary = (
                f"{tunnel.interface} lacks its global IPv6 address {', '.join(v6)}: BIRD then "
                "has no IPv6 next hop for the routes it sends and withdraws or blackholes "
                "every IPv6 route (write-up pitfall 4)"
            )
        else:
            summary = (
                f"{tunnel.interface} lacks {', '.join(missing)}: the iBGP session runs between "
                "these addresses"
            )
        checks.append(
            fail(
                name,
                summary,
                f"{tunnel.interface} has {', '.join(sorted(present)) or 'no address'}",
                f"{REDEPLOY} (networking.wireguard.interfaces.{tunnel.interface}.ips); by hand: "
                + "; ".join(
                    f"`ip address add {ip} dev {tunnel.interface}"
                    + (" nodad`" if ":" in ip else "`")
                    for ip in missing
                ),
            )
        )
    return checks


# --- the firewall ------------------------------------------------------------------


def _default_device(live: Live, family: str) -> str | None:
    for route in (live.routes or {}).get(family, []):
        if route.dst == "default" and route.dev:
            return route.dev
    return None


def _outside_interface(exp: Expectations, live: Live) -> str | None:
    """Where packets from the internet arrive: the uplink, else the default route's."""
    return exp.uplinks[0] if exp.uplinks else _default_device(live, "ipv4")


def _other_interface(exp: Expectations, live: Live, tunnel: str) -> str:
    """The far side of forwarded tunnel traffic: a LAN (client) or the uplink."""
    for candidate in (*exp.lans, *exp.uplinks):
        if candidate != tunnel:
            return candidate
    return _default_device(live, "ipv4") or "(another interface)"


def _verdict_evidence(verdict: Verdict) -> str:
    text = verdict.where
    if verdict.uncertain:
        text += "; unless one of these matches: " + " | ".join(verdict.uncertain[:3])
    return text


def _port_check(
    exp: Expectations,
    live: Live,
    ruleset: Ruleset,
    interface: str | None,
    proto: str,
    port: int,
    what: str,
) -> Check:
    where = f"on {interface}" if interface else "from outside"
    name = f"firewall.port {proto}/{port}" + (f" {interface}" if interface else "")
    # Through a tunnel, BGP and BFD come from the host at its other end (IPv4):
    # a client lets nothing else in there.
    neighbor = exp.tunnel_neighbors.get(interface or "")
    sources = [("ipv4", neighbor)] if neighbor else [("ipv4", None), ("ipv6", None)]
    verdicts = [
        walk_hooks(
            ruleset,
            Packet("prerouting", family, proto, port, interface, saddr=saddr),
            ("prerouting", "input"),
        )
        for family, saddr in sources
    ]
    dropped = [v for v in verdicts if v.action == "drop"]
    if not dropped:
        return ok(name, f"{what} ({proto.upper()} {port}) is let in {where}")
    verdict = dropped[0]
    pitfall = " (write-up pitfall 1)" if what == "WireGuard" else ""
    opener = "allowedUDPPorts" if proto == "udp" else "allowedTCPPorts"
    option = (
        f"networking.firewall.{opener}"
        if interface is None or interface == _outside_interface(exp, live)
        else f"networking.firewall.interfaces.{interface}.{opener}"
    )
    return fail(
        name,
        f"this host's firewall drops {what} ({proto.upper()} {port}) {where}{pitfall}",
        _verdict_evidence(verdict),
        f"let {proto.upper()} {port} in: remove the rule that drops it ({verdict.where}); the "
        f"module opens it through {option} — {REDEPLOY}. A provider's external firewall "
        f"(Hetzner, IONOS...) must allow it too",
    )


def check_firewall_ports(exp: Expectations, live: Live) -> list[Check]:
    ruleset = live.ruleset
    if ruleset is None:
        error = live.errors.get("nft", "no output")
        return [
            warn(
                "firewall.ports",
                "cannot read the nftables ruleset",
                f"nft -j list ruleset: {error}",
                "run doctor as root; with iptables instead of nftables, check the ports by hand",
            )
        ]
    checks = []
    outside = _outside_interface(exp, live)
    for port in exp.allowed_udp_ports:
        checks.append(_port_check(exp, live, ruleset, outside, "udp", port, "WireGuard"))
    for interface, (tcp, udp) in exp.interface_ports.items():
        for port in tcp:
            checks.append(_port_check(exp, live, ruleset, interface, "tcp", port, "BGP"))
        for port in udp:
            checks.append(_port_check(exp, live, ruleset, interface, "udp", port, "BFD"))
    return checks


# --- the handshake -------------------------------------------------------------------


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def check_handshakes(exp: Expectations, live: Live) -> list[Check]:
    checks = []
    for tunnel in exp.tunnels:
        wg = (live.wireguard or {}).get(tunnel.interface)
        if wg is None:
            continue
        by_key = {peer.public_key: peer for peer in wg.peers}
        for peer in tunnel.peers:
            running = by_key.get(peer.public_key)
            if running is None:
                continue  # check_keys said so
            name = f"wireguard.handshake {tunnel.interface} {peer.name}"
            age = running.handshake_age(live.now)
            if age is not None and age <= STALE_HANDSHAKE_SECONDS:
                checks.append(ok(name, f"last handshake with {peer.name} {_age(age)} ago"))
                continue
            when = "never" if age is None else f"{_age(age)} ago"
            if peer.endpoint:
                fix = (
                    f"packets to {peer.endpoint} get no answer: open UDP "
                    f"{peer.endpoint.rsplit(':', 1)[1]} on "
                    f"{peer.name} (its firewall and its provider's external firewall, write-up "
                    f"pitfall 1), check the endpoint, and run `ibgp-tunnel doctor` on {peer.name}"
                )
            else:
                fix = (
                    f"{peer.name} dials this host and gets no answer: make sure UDP "
                    f"{tunnel.listen_port} reaches this host (provider firewall), that "
                    f"{peer.name}'s endpoint points here, and run `ibgp-tunnel doctor` on "
                    f"{peer.name}"
                )
            checks.append(
                fail(
                    name,
                    f"no WireGuard handshake with {peer.name} for more than "
                    f"{STALE_HANDSHAKE_SECONDS // 60} minutes, so the tunnel carries nothing",
                    f"latest handshake: {when}; endpoint {running.endpoint or 'unknown'}; "
                    f"received {running.rx_bytes} bytes",
                    fix,
                )
            )
    return checks


# --- BGP sessions --------------------------------------------------------------------


def _session_fix(session: SessionExpect, row: Protocol, reason: str) -> str:
    peer = session.peer_host or f"the peer at {session.neighbor}"
    live_as = row.details.get("Neighbor AS", "")
    if live_as and session.neighbor_as is not None and live_as != str(session.neighbor_as):
        # Whatever BIRD's last error, a config that expects another AS is the cause.
        return (
            f"this host's BIRD expects AS {live_as} from {session.neighbor}, the plan says "
            f"{session.neighbor_as}: its bird.conf is not the plan's; {REDEPLOY}"
        )
    if "Bad peer AS" in reason:
        return (
            f"{peer} refused this host's AS {session.local_as}: its BIRD expects another AS. "
            f"Both ends must use the plan's asn; deploy the plan to {peer} and run "
            f"`ibgp-tunnel doctor` there"
        )
    if "BFD session down" in reason:
        return (
            "BFD (multihop, UDP 4784) stopped getting through the tunnel: see the bfd and "
            f"handshake lines, and allow UDP 4784 on {session.interface} at both ends"
        )
    if not session.internal:
        return (
            f"the eBGP session to {session.neighbor} over {session.interface} is down: check "
            f"that link (ping {session.neighbor}), that TCP 179 is open on it, and ask the "
            "peer's operator whether their side is configured"
        )
    if "Connection refused" in reason:
        return (
            f"nothing accepts BGP (TCP 179) at {session.neighbor}: BIRD on {peer} is not "
            f"running or has no session for this host; run `ibgp-tunnel doctor` on {peer}"
        )
    if "Hold timer expired" in reason:
        return (
            f"keepalives from {peer} stopped arriving: the tunnel lost packets (see the "
            "handshake line) or the peer's BIRD hangs"
        )
    if "No listening socket" in reason:
        return "another process (an old BIRD?) holds TCP 179: stop it and `systemctl restart bird`"
    return (
        f"BIRD gets no BGP answer from {session.neighbor}: check the tunnel (handshake line), "
        f"that TCP 179 is open on {session.interface} at {peer}, and run "
        f"`ibgp-tunnel doctor` on {peer}"
    )


def check_sessions(exp: Expectations, live: Live) -> list[Check]:
    reason = _bird_down(live)
    if reason:
        return [skip(f"bgp.session {s.protocol}", reason) for s in exp.sessions]
    checks = []
    for session in exp.sessions:
        name = f"bgp.session {session.protocol}"
        row = live.protocols.get(session.protocol)
        if row is None:
            checks.append(
                fail(
                    name,
                    f"BIRD runs no protocol {session.protocol}: its config is not the plan's",
                    f"protocols: {', '.join(p for p in live.protocols) or 'none'}",
                    f"{REDEPLOY}, or load the rendered bird.conf with `birdc configure`",
                )
            )
            continue
        state = row.details.get("BGP state", row.info or row.state)
        if row.state == "up" and state.startswith("Established"):
            counts = ", ".join(
                f"{c.name} {c.imported} in/{c.exported} out"
                for c in row.channels.values()
                if c.imported is not None
            )
            checks.append(ok(name, f"Established with {session.neighbor}", counts))
            continue
        reason_text = row.last_error or row.info or state
        checks.append(
            fail(
                name,
                f"the BGP session with {session.peer_host or session.neighbor} is "
                f'{state}, not Established: BIRD says "{reason_text}"',
                f"{row.name} {row.state} {row.info}".strip(),
                _session_fix(session, row, reason_text),
            )
        )
    return checks


def check_bfd(exp: Expectations, live: Live) -> list[Check]:
    wanted = [s for s in exp.sessions if s.bfd]
    reason = _bird_down(live)
    if reason:
        return [skip(f"bfd.session {s.protocol}", reason) for s in wanted]
    checks = []
    for session in wanted:
        name = f"bfd.session {session.protocol}"
        found = [b for b in (live.bfd or []) if b.address == session.neighbor]
        if found and found[0].state == "Up":
            checks.append(ok(name, f"BFD with {session.neighbor} is Up"))
            continue
        evidence = f"BFD session {found[0].state}" if found else "no BFD session"
        checks.append(
            fail(
                name,
                f"BFD with {session.peer_host or session.neighbor} ({session.neighbor}) is "
                f"{found[0].state if found else 'missing'}: BIRD ends the BGP session on it",
                evidence,
                f"BFD packets (UDP 4784, multihop) must pass on {session.interface} both ways: "
                f"allow UDP 4784 there on both ends (firewallInterfaces), and run "
                f"`ibgp-tunnel doctor` on {session.peer_host or 'the peer'}",
            )
        )
    return checks


def check_recovery(exp: Expectations, live: Live) -> list[Check]:
    if _bird_down(live) or live.bird is None:
        return []
    if not live.bird.recovering:
        return [ok("bird.recovery", "BIRD is not in graceful restart recovery")]
    wait = exp.graceful_restart_wait
    return [
        fail(
            "bird.recovery",
            "BIRD is still in graceful restart recovery (started with -R): it holds back "
            "kernel and BGP updates until every neighbour sends End-of-RIB",
            live.bird.recovery_detail,
            "a neighbour's session is not up: fix the failing bgp.session line; recovery "
            f"ends by itself after graceful restart wait ({wait} s)"
            if wait
            else "a neighbour's session is not up: fix the failing bgp.session line",
        )
    ]


# --- routes in the kernel ----------------------------------------------------------------


def check_kernel_routes(exp: Expectations, live: Live) -> list[Check]:
    if _bird_down(live) or live.routes is None:
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
        other = _other_interface(exp, live, rule.interface)
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
                _verdict_evidence(dropped[0]),
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
                _verdict_evidence(dropped[0]),
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
    if _bird_down(live):
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
    if _bird_down(live):
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


CHECKS: tuple[CheckFn, ...] = (
    check_bird_running,
    check_tunnel_interfaces,
    check_keys,
    check_tunnel_addresses,
    check_firewall_ports,
    check_handshakes,
    check_sessions,
    check_bfd,
    check_recovery,
    check_kernel_routes,
    check_forwarding_sysctl,
    check_forward_rules,
    check_masquerade,
    check_rp_filter,
    check_accept_ra,
    check_ipv6_routes,
    check_overlaps,
    check_mtu,
    check_import_limits,
)


def run_checks(exp: Expectations, live: Live) -> list[Check]:
    """Every check, in order (see the module docstring)."""
    return [check for function in CHECKS for check in function(exp, live)]
