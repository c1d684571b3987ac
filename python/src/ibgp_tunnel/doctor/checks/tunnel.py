"""The WireGuard tunnel: interfaces, keys, addresses and the handshake."""

from __future__ import annotations

import ipaddress

from ibgp_tunnel.doctor.checks.common import (
    REDEPLOY,
    STALE_HANDSHAKE_SECONDS,
    age_text,
)
from ibgp_tunnel.doctor.checks.liveness import consequence, consequence_fix, dead_tunnels
from ibgp_tunnel.doctor.expect import Expectations
from ibgp_tunnel.doctor.live import Live
from ibgp_tunnel.doctor.result import Check, fail, ok, warn

# --- the tunnel --------------------------------------------------------------------


def check_tunnel_interfaces(exp: Expectations, live: Live) -> list[Check]:
    checks = []
    for tunnel in exp.tunnels:
        name = f"wireguard.interface {tunnel.interface}"
        unit = tunnel.unit or f"wireguard-{tunnel.interface}"
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


# --- the handshake -------------------------------------------------------------------


def check_handshakes(exp: Expectations, live: Live) -> list[Check]:
    checks = []
    dead = dead_tunnels(exp, live)
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
            if tunnel.interface in dead:
                # A handshake from before the packets stopped says nothing about now.
                when = "never" if age is None else f"{age_text(age)} ago"
                checks.append(
                    fail(
                        name,
                        f"no packet from {peer.name} arrives now, {consequence(tunnel.interface)}",
                        f"latest handshake: {when}",
                        consequence_fix(tunnel.interface),
                    )
                )
                continue
            if age is not None and age <= STALE_HANDSHAKE_SECONDS:
                checks.append(ok(name, f"last handshake with {peer.name} {age_text(age)} ago"))
                continue
            when = "never" if age is None else f"{age_text(age)} ago"
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
