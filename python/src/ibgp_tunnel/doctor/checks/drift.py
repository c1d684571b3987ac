"""Drift: the running WireGuard peers, BIRD config and nftables table against what the
plan renders (a hand edit, a config written but not loaded, a peer added by hand).

Each difference is one line naming what differs, with a short excerpt, and the
fix. order.py runs the WireGuard lines before the handshake (a peer's allowed IPs
changed by hand silences BGP and BFD, whose lines would otherwise point at the
firewall) and the BIRD and nftables lines last: every fault another check names
more precisely (a deleted forward rule, a missing NAT table, a wrong peer AS)
keeps its own line first.
"""

from __future__ import annotations

import ipaddress

from ibgp_tunnel.doctor.checks.common import age_text
from ibgp_tunnel.doctor.expect import Expectations, PeerExpect, TunnelExpect
from ibgp_tunnel.doctor.live import Live
from ibgp_tunnel.doctor.parse_drift import config_protocols, nft_drift, text_drift
from ibgp_tunnel.doctor.parse_wg import WgInterface, WgPeer, endpoint_address
from ibgp_tunnel.doctor.result import Check, Status, fail, ok, skip, warn

# BIRD prints its times to the millisecond (some versions to the second), and the
# file's age and BIRD's clock are read a moment apart.
LOADED_SLACK_SECONDS = 1.5
NOT_RECORDED = "not checked: these outputs were saved before doctor read {what}"


# --- WireGuard ---------------------------------------------------------------------------


def _networks(values: tuple[str, ...]) -> set[str]:
    found = set()
    for value in values:
        try:
            found.add(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            found.add(value.strip())
    return found


def _endpoint_differs(planned: str, running: str | None) -> bool:
    """Whether `running` (what wg shows: an address) is not the plan's endpoint. A plan
    endpoint that is a DNS name is compared by its port only: wg shows the address
    the name resolved to."""
    if running is None:
        return True
    port = planned.rsplit(":", 1)[-1]
    if running.rsplit(":", 1)[-1] != port:
        return True
    try:
        want = ipaddress.ip_address(endpoint_address(planned))
    except ValueError:
        return False
    try:
        return ipaddress.ip_address(endpoint_address(running)) != want
    except ValueError:
        return True


def _restart_hint(interface: str) -> str:
    return (
        f"or `systemctl restart wireguard-{interface}` sets the plan's peers again (a short "
        "break in the tunnel); a change meant to stay belongs in the plan"
    )


def _peer_lines(interface: str, plan: PeerExpect, peer: WgPeer, source: str) -> list[Check]:
    base = f"drift.wireguard {interface} {plan.name}"
    lines = []
    want, have = _networks(plan.allowed_ips), _networks(peer.allowed_ips)
    if want != have:
        diff = [f"+ {n}" for n in sorted(have - want)] + [f"- {n}" for n in sorted(want - have)]
        lines.append(
            fail(
                f"{base} allowed-ips",
                f"{interface}'s peer {plan.name} has other allowed IPs than {source} gives "
                "(changed by hand?): WireGuard drops what arrives from outside them and "
                "sends nothing towards the missing ones, so BGP and BFD through the tunnel "
                "fail",
                f"running {', '.join(peer.allowed_ips) or 'none'}; differs by {' '.join(diff)}",
                f"`wg set {interface} peer {plan.public_key} allowed-ips "
                f"{','.join(plan.allowed_ips)}`, {_restart_hint(interface)}",
            )
        )
    if plan.endpoint and _endpoint_differs(plan.endpoint, peer.endpoint):
        lines.append(
            fail(
                f"{base} endpoint",
                f"{interface} sends {plan.name}'s packets to {peer.endpoint or 'no endpoint'}, "
                f"not to the plan's {plan.endpoint} (set by hand, or {plan.name} roamed there)",
                f"endpoint {peer.endpoint or '(none)'}",
                f"`wg set {interface} peer {plan.public_key} endpoint {plan.endpoint}`, "
                f"{_restart_hint(interface)}",
            )
        )
    return lines


def _extra_peer(interface: str, peer: WgPeer, source: str) -> Check:
    return fail(
        f"drift.wireguard {interface} extra-peer {peer.public_key[:8]}",
        f"{interface} has a peer {source} does not have (added by hand?): its allowed IPs "
        "take routes and traffic from the plan's peers",
        f"peer {peer.public_key}, allowed IPs {', '.join(peer.allowed_ips) or 'none'}, "
        f"endpoint {peer.endpoint or '(none)'}",
        f"`wg set {interface} peer {peer.public_key} remove`, {_restart_hint(interface)}",
    )


def _tunnel_drift(tunnel: TunnelExpect, wg: WgInterface, source: str) -> list[Check]:
    planned = {peer.public_key: peer for peer in tunnel.peers if peer.public_key}
    lines: list[Check] = []
    for peer in wg.peers:
        plan = planned.get(peer.public_key)
        if plan is None:
            lines.append(_extra_peer(tunnel.interface, peer, source))
        else:
            lines += _peer_lines(tunnel.interface, plan, peer, source)
    if lines:
        return lines
    # A peer of the plan's that is missing is wireguard.peer-key's line.
    return [
        ok(
            f"drift.wireguard {tunnel.interface}",
            f"{tunnel.interface}'s peers, allowed IPs and endpoints are the plan's",
        )
    ]


def check_wireguard_drift(exp: Expectations, live: Live) -> list[Check]:
    checks: list[Check] = []
    for tunnel in exp.tunnels:
        wg = (live.wireguard or {}).get(tunnel.interface)
        if wg is not None:  # no interface, or no wg: wireguard.interface's line
            checks += _tunnel_drift(tunnel, wg, exp.key_source)
    return checks


# --- BIRD ---------------------------------------------------------------------------------


def _not_loaded_reason(live: Live, text: str) -> str | None:
    """Why BIRD does not run the file as it is now (None: it does, as far as doctor
    can tell): the file changed after BIRD last read its config, or the file names
    protocols BIRD does not run (or BIRD runs named ones the file lost)."""
    age, ago = live.bird_config_age, live.bird_reconfigured_ago
    if age is not None and ago is not None and age + LOADED_SLACK_SECONDS < ago:
        return (
            f"the file changed {age_text(age)} ago, BIRD last read its config {age_text(ago)} ago"
        )
    if live.bird is None or not live.bird.up or not live.protocols:
        return None
    found = config_protocols(text)
    running = set(live.protocols)
    missing = sorted(found.named - running)
    if missing:
        return f"the file defines protocol {', '.join(missing[:3])}, which BIRD does not run"
    if not found.includes_at_top:
        numbered = tuple(found.unnamed_types)
        extra = sorted(
            name
            for name in running - found.named
            if not (name.rstrip("0123456789") in numbered and name[-1:].isdigit())
        )
        if extra:
            return f"BIRD runs protocol {', '.join(extra[:3])}, which the file no longer has"
    return None


def _config_line(exp: Expectations, live: Live, path: str, text: str) -> Check:
    name = f"drift.bird.config {path}"
    drift = text_drift(exp.bird_config, text, contained=not exp.bird_standalone)
    ours = "the plan's bird.conf" if exp.bird_standalone else "the plan's part of bird.conf"
    if drift is None:
        return ok(name, f"BIRD's config file is {ours}")
    unloaded = _not_loaded_reason(live, text)
    if unloaded:
        return fail(
            name,
            f"BIRD's config file differs from {ours} (a hand edit?) and BIRD has not loaded "
            "it yet: it still runs what it read before, and runs the edit from its next "
            "reload or restart on",
            f"{drift.excerpt()}; {unloaded}",
            "put the plan's file back: `nixos-rebuild switch` (it replaces a hand-edited "
            "/etc/bird/bird.conf); do not `birdc configure` the edited file. A change meant "
            "to stay belongs in the plan (or services.bird.config)",
        )
    return fail(
        name,
        f"BIRD runs a config file that differs from {ours} (a hand edit?)",
        drift.excerpt(),
        "put the plan's file back: `nixos-rebuild switch` (it replaces a hand-edited "
        "/etc/bird/bird.conf), then `systemctl reload bird` (`birdc configure`): a switch "
        "reloads BIRD only when the plan's file changed. A change meant to stay belongs in "
        "the plan (or services.bird.config)",
    )


def _loaded_line(live: Live, text: str) -> Check:
    if live.bird is None or not live.bird.up:
        return skip("drift.bird.loaded", "not checked: BIRD is not running (see bird.running)")
    reason = _not_loaded_reason(live, text)
    if reason is None:
        return ok("drift.bird.loaded", "BIRD runs its config file as it is now")
    return fail(
        "drift.bird.loaded",
        "BIRD has not loaded its config file as it is now (written, but no reload)",
        reason,
        "`systemctl reload bird` (runs `birdc configure`); if BIRD refuses the file, "
        "`birdc configure check` says why",
    )


def check_bird_drift(exp: Expectations, live: Live) -> list[Check]:
    if not exp.bird_config:
        return []
    text = live.bird_config
    if text is None:
        error = live.errors.get("bird_config")
        if error is None:
            return [skip("drift.bird.config", NOT_RECORDED.format(what="BIRD's config file"))]
        return [
            warn(
                "drift.bird.config",
                "cannot read the config file BIRD runs from, so it is not compared",
                error,
                "run doctor as root; if BIRD reads another file than /etc/bird/bird.conf, "
                "name it with --bird-config PATH",
            )
        ]
    path = live.bird_config_path or "(BIRD's config file)"
    config = _config_line(exp, live, path, text)
    if config.status is not Status.OK:
        return [
            config,
            skip("drift.bird.loaded", "not checked on its own: see drift.bird.config"),
        ]
    return [config, _loaded_line(live, text)]


# --- nftables ------------------------------------------------------------------------------


def check_nft_drift(exp: Expectations, live: Live) -> list[Check]:
    table = exp.nft_table.strip()
    if not exp.nft_ruleset or len(table.split()) != 2:
        return []
    name = f"drift.nftables {table}"
    if live.nft_table is None:
        error = live.errors.get("nft_table")
        if error is None:
            return [skip(name, NOT_RECORDED.format(what="our nftables table"))]
        return [
            fail(
                name,
                f"the table {table} the plan renders is not loaded",
                f"nft list table {table}: {error}",
                "`systemctl reload nftables` loads the configured ruleset again (the plan's "
                "table with it); if the host has no such table in its configuration, "
                "`nixos-rebuild switch`",
            )
        ]
    drift = nft_drift(exp.nft_ruleset, live.nft_table)
    if drift is None:
        return [ok(name, f"{table} holds the rendered rules")]
    return [
        fail(
            name,
            f"{table} differs from the rendered table (a rule added or deleted by hand?)",
            drift.excerpt(),
            "`systemctl reload nftables` loads the plan's table again (NixOS replaces the "
            "whole table); a rule meant to stay belongs in the host's own table or the plan",
        )
    ]
