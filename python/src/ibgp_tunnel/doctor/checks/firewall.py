"""The firewall: the tunnel's and BGP's ports as the host's nftables rules treat them."""

from __future__ import annotations

from ibgp_tunnel.doctor.checks.common import (
    REDEPLOY,
    outside_interface,
    verdict_evidence,
)
from ibgp_tunnel.doctor.expect import Expectations
from ibgp_tunnel.doctor.live import Live
from ibgp_tunnel.doctor.nft_eval import Packet, walk_hooks
from ibgp_tunnel.doctor.parse_nft import Ruleset
from ibgp_tunnel.doctor.result import Check, fail, ok, warn

# --- the firewall ------------------------------------------------------------------


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
        if interface is None or interface == outside_interface(exp, live)
        else f"networking.firewall.interfaces.{interface}.{opener}"
    )
    return fail(
        name,
        f"this host's firewall drops {what} ({proto.upper()} {port}) {where}{pitfall}",
        verdict_evidence(verdict),
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
    outside = outside_interface(exp, live)
    for port in exp.allowed_udp_ports:
        checks.append(_port_check(exp, live, ruleset, outside, "udp", port, "WireGuard"))
    for interface, (tcp, udp) in exp.interface_ports.items():
        for port in tcp:
            checks.append(_port_check(exp, live, ruleset, interface, "tcp", port, "BGP"))
        for port in udp:
            checks.append(_port_check(exp, live, ruleset, interface, "udp", port, "BFD"))
    return checks
