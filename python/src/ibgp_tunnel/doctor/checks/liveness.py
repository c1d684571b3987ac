"""Tunnel liveness, measured: did anything come back through each tunnel while this
host sent probes into it?

collect.py pings the host at each tunnel's other end (a few probes, all tunnels at
once, at most collect.PROBE_SECONDS) between two reads of WireGuard's counters. A
tunnel is dead when the probes went out and neither a reply nor any other packet
(BFD, a keepalive, a handshake answer) arrived in that window: WireGuard counts
every packet it decrypts, before any firewall sees it, so a peer whose firewall
drops pings still counts as alive while its BFD or BGP talks. A dead tunnel is
the cause; the handshake, BGP and BFD lines behind it say they are its consequence
(`consequence`), so nobody opens BFD's port for a tunnel that carries nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ibgp_tunnel.doctor.checks.common import age_text
from ibgp_tunnel.doctor.collect import IFNAME, PROBE_SECONDS
from ibgp_tunnel.doctor.expect import Expectations, TunnelExpect
from ibgp_tunnel.doctor.live import Live
from ibgp_tunnel.doctor.parse_wg import WgInterface
from ibgp_tunnel.doctor.result import Check, fail, ok, skip


def probe_address(exp: Expectations, interface: str) -> str | None:
    """The address the liveness probe pings through `interface`: the link's other end,
    else the neighbour of a BGP session over it (a DN42 peer). None when there is none,
    or when the interface or the address is not what the core validates (so neither can
    become one of ping's options)."""
    neighbor = exp.tunnel_neighbors.get(interface) or next(
        (s.neighbor for s in exp.sessions if s.interface == interface), None
    )
    if neighbor is None or not IFNAME.fullmatch(interface):
        return None
    try:
        return str(ipaddress.ip_address(neighbor))
    except ValueError:
        return None


def _received(wg: WgInterface | None) -> int | None:
    return None if wg is None else sum(peer.rx_bytes for peer in wg.peers)


@dataclass(frozen=True)
class Verdict:
    interface: str
    alive: bool | None  # None: not measured
    why: str  # the skip reason, or what was seen
    sent: int = 0  # probes that went out


def _verdict(exp: Expectations, live: Live, tunnel: TunnelExpect) -> Verdict:
    name = tunnel.interface
    address = probe_address(exp, name)
    wg = (live.wireguard or {}).get(name)
    if wg is None:
        return Verdict(name, None, f"not measured: {name} is not running (see its lines above)")
    if address is None:
        return Verdict(
            name, None, f"not measured: the plan names no address to ping through {name}"
        )
    if name not in live.liveness or live.wireguard_after is None:
        return Verdict(
            name,
            None,
            f"not measured: no probe through {name} in these outputs (recorded by a doctor "
            "without the liveness check)",
        )
    probe = live.liveness[name]
    if probe is None:
        error = live.errors.get(f"probe {name}", "no output")
        return Verdict(name, None, f"not measured: ping through {name} sent nothing ({error})")
    before, after = _received(wg), _received(live.wireguard_after.get(name))
    grew = after - before if before is not None and after is not None else 0
    seen = (
        f"ping {address} via {name}: {probe.transmitted} sent, {probe.received} answered; "
        f"received {before} -> {after if after is not None else '?'} bytes"
    )
    if probe.received > 0 or grew > 0:
        return Verdict(name, True, seen)
    if probe.transmitted == 0:
        return Verdict(name, None, f"not measured: ping sent no probe ({seen})")
    return Verdict(name, False, seen, probe.transmitted)


def verdicts(exp: Expectations, live: Live) -> dict[str, Verdict]:
    return {tunnel.interface: _verdict(exp, live, tunnel) for tunnel in exp.tunnels}


def dead_tunnels(exp: Expectations, live: Live) -> set[str]:
    return {name for name, v in verdicts(exp, live).items() if v.alive is False}


def consequence(interface: str) -> str:
    """What a line behind a dead tunnel says about its cause."""
    return f"because the tunnel is dead (see tunnel.alive {interface})"


def consequence_fix(interface: str) -> str:
    return (
        f"nothing of its own: make {interface} carry packets again (tunnel.alive "
        f"{interface}'s fix); this comes back by itself once it does"
    )


def _port(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[1] if ":" in endpoint else "?"


def _dead(exp: Expectations, live: Live, tunnel: TunnelExpect, verdict: Verdict) -> Check:
    name = tunnel.interface
    seen = verdict.why
    peers = ", ".join(p.name for p in tunnel.peers if p.name) or "the peer"
    # A link's other end is a plan host; a DN42 tunnel's is someone else's router.
    there = (
        f"run `ibgp-tunnel doctor` on {peers}"
        if tunnel.link
        else f"ask {peers}'s operator to check their side"
    )
    running = (live.wireguard or {}).get(name)
    ages = [peer.handshake_age(live.now) for peer in (running.peers if running else ())]
    latest = min((age for age in ages if age is not None), default=None)
    seen += "; latest handshake " + ("never" if latest is None else f"{age_text(latest)} ago")
    dialled = [p for p in tunnel.peers if p.endpoint]
    if dialled:
        endpoint = dialled[0].endpoint or ""
        port = _port(endpoint)
        seen += f"; endpoint {endpoint}"
        fix = (
            f"UDP {port} between this host and {peers} ({endpoint}) is dropped: open UDP "
            f"{port} at {peers}: in its provider's or cloud firewall (Hetzner, IONOS... "
            f"external firewall) and in its own firewall (nftables: `nft list ruleset` "
            f"there; write-up pitfall 1); check {endpoint} is its address, and {there}"
        )
    else:
        roamed = [p.endpoint for p in (running.peers if running else ()) if p.endpoint]
        seen += f"; {peers} last wrote from {roamed[0] if roamed else 'nowhere yet'}"
        port = str(tunnel.listen_port) if tunnel.listen_port is not None else "?"
        fix = (
            f"{peers} dials this host on UDP {port} and nothing of it arrives: open UDP "
            f"{port} towards this host in the provider's or cloud firewall in front of it "
            f"(Hetzner, IONOS... external firewall) and in this host's own firewall "
            f"(nftables), and check {peers}'s own firewall and that its endpoint points "
            f"here; {there}"
        )
    return fail(
        f"tunnel.alive {name}",
        f"nothing came back through {name} from {peers} in {PROBE_SECONDS} s while this "
        f"host sent {verdict.sent} probes into it: the tunnel is dead (its UDP {port} "
        "packets are dropped on the way), so BGP and BFD over it cannot work",
        seen,
        fix,
    )


def check_tunnel_alive(exp: Expectations, live: Live) -> list[Check]:
    checks = []
    for tunnel in exp.tunnels:
        verdict = _verdict(exp, live, tunnel)
        name = f"tunnel.alive {tunnel.interface}"
        if verdict.alive is None:
            checks.append(skip(name, verdict.why))
        elif verdict.alive:
            checks.append(ok(name, f"packets come back through {tunnel.interface}", verdict.why))
        else:
            checks.append(_dead(exp, live, tunnel, verdict))
    return checks
