"""The path MTU, measured: what the don't-fragment probes (doctor/pmtu_probe.py)
found through each link's tunnel and over the underlay towards its endpoint.

Three outcomes for packets of the tunnel's full MTU: they pass (ok); they were lost
once and passed on the second try, because an ICMP "fragmentation needed" taught the
kernel the path's MTU in between (discovery works: warn); or they never pass while
smaller ones do (a black hole: fail). Placed right after the tunnel's own lines: a
black hole stalls BGP on its first large UPDATE, so sessions fail behind it.
"""

from __future__ import annotations

from ibgp_tunnel.doctor.checks.common import IPV6_MIN_MTU, WG_OVERHEAD
from ibgp_tunnel.doctor.expect import Expectations
from ibgp_tunnel.doctor.live import Live
from ibgp_tunnel.doctor.parse_ping import Probed
from ibgp_tunnel.doctor.result import Check, fail, ok, skip, warn

NOT_PROBED = "not probed: these outputs were saved before doctor probed the path MTU"
ICMP = "ICMP 'fragmentation needed' (IPv4 type 3 code 4) and ICMPv6 'packet too big' (type 2)"


def _outcome(probed: Probed) -> str:
    """silent (nothing passed), ok, learnt (the top passed on its retry) or hole."""
    if probed.largest_passed is None:
        return "silent"
    top = [p.passed for p in probed.pings[probed.high]]
    if top[0]:
        return "ok"
    return "learnt" if any(top) else "hole"


def _seen(probed: Probed) -> str:
    where = "over the underlay" if probed.kind == "underlay" else "through the tunnel"
    text = f"ping -M do {where} to {probed.address}: "
    largest, failed = probed.largest_passed, probed.smallest_failed
    if largest is None:
        return text + f"no answer from {min(probed.pings)} to {probed.high} bytes"
    if largest == probed.high:
        tries = len(probed.pings[probed.high])
        return text + f"{largest} bytes answered" + (" on the second try" if tries > 1 else "")
    text += f"{largest} bytes answered, {failed} not"
    if len(probed.pings[probed.high]) > 1:
        text += f" ({probed.high} twice)"
    icmp = probed.icmp_mtu
    return text + (f", ICMP named mtu {icmp}" if icmp else ", no ICMP error came back")


def _underlay_path(underlay: Probed | None) -> int | None:
    """The underlay's path MTU towards the endpoint, when the probe found it."""
    if underlay is None or underlay.largest_passed is None:
        return None
    if underlay.icmp_mtu:
        return underlay.icmp_mtu
    return underlay.largest_passed if underlay.largest_passed < underlay.high else None


def _mtu_to_set(tunnels: list[Probed], underlay: Probed | None, mtu: int) -> int:
    path = _underlay_path(underlay)
    if underlay is not None and path is not None and path - WG_OVERHEAD[underlay.version] < mtu:
        return path - WG_OVERHEAD[underlay.version]
    # Without the underlay's answer: the largest packet that went through is safe
    # (WireGuard pads to 16 bytes, but never beyond the interface's MTU).
    passed = [p.largest_passed for p in tunnels if p.largest_passed is not None]
    return min(passed, default=mtu)


def _fix(interface: str, mtu: int, link: str) -> str:
    text = (
        f"set `mtu = {mtu}` in the plan's [links.{link or '...'}] and deploy both ends "
        f"(nixos-rebuild switch; the module sets networking.wireguard.interfaces."
        f"{interface}.mtu), or `ip link set {interface} mtu {mtu}` on both ends until then; "
        f"or let {ICMP} through where the path drops them"
    )
    if mtu < IPV6_MIN_MTU:
        text += (
            f". {mtu} is below IPv6's minimum {IPV6_MIN_MTU}: IPv6 through the tunnel "
            "needs a path that carries more"
        )
    return text


def _own_mtu(live: Live, address: str) -> int | None:
    """The MTU of this host's own interface towards `address`."""
    device = live.route_devices.get(address)
    link = (live.links or {}).get(device or "")
    return link.mtu if link else None


def _passes(
    live: Live,
    link: str,
    interface: str,
    peer: str,
    high: int,
    found: list[Probed],
    evidence: str,
) -> Check:
    """Full-size packets got through: ok, unless they needed path MTU discovery."""
    name = f"tunnel.pmtu {interface}"
    tunnels = [p for p in found if p.kind == "tunnel"]
    underlay = next((p for p in found if p.kind == "underlay"), None)
    path = _underlay_path(underlay)
    learnt = any(_outcome(p) == "learnt" for p in tunnels)
    if underlay is None or path is None or path >= high + WG_OVERHEAD[underlay.version]:
        if not learnt:
            return ok(name, f"packets of {high} bytes (the tunnel's MTU) pass to {peer}", evidence)
        outer, own = None, None
    else:
        outer, own = high + WG_OVERHEAD[underlay.version], _own_mtu(live, underlay.address)
    if outer is not None and own is not None and path == own:
        # This host's own uplink is the limit: tunnel.mtu (further down) names it.
        return ok(
            name,
            f"packets of {high} bytes (the tunnel's MTU) pass to {peer}, but WireGuard's "
            f"{outer}-byte packets get fragmented on this host (its uplink carries {path})",
            evidence,
        )
    named = f" {path}" if path else ""
    return warn(
        name,
        f"packets of {high} bytes through {interface} need path MTU discovery: an ICMP error "
        f"named the path's MTU{named}, below what WireGuard sends, so the first large "
        f"packets towards {peer} are lost and the rest travel fragmented",
        evidence,
        _fix(interface, _mtu_to_set(tunnels, underlay, high), link),
    )


def check_path_mtu(exp: Expectations, live: Live) -> list[Check]:
    checks = []
    for tunnel in exp.tunnels:
        if tunnel.interface not in exp.tunnel_neighbors:
            continue  # a DN42 tunnel: its far end is not ours to probe
        interface, name = tunnel.interface, f"tunnel.pmtu {tunnel.interface}"
        if live.probes is None:
            checks.append(skip(name, live.errors.get("probes", NOT_PROBED)))
            continue
        found = [p for (i, _, _), p in sorted(live.probes.items()) if i == interface]
        tunnels = [p for p in found if p.kind == "tunnel"]
        underlay = next((p for p in found if p.kind == "underlay"), None)
        peer = tunnel.peers[0].name if tunnel.peers else exp.tunnel_neighbors[interface]
        outcomes = {_outcome(p) for p in tunnels}
        if not tunnels:
            checks.append(skip(name, f"not probed: {interface} is not up here (see above)"))
            continue
        error = next((p.error for p in tunnels if p.error), None)
        if outcomes == {"silent"} and error:
            checks.append(skip(name, f"not measured: ping did not run ({error})"))
            continue
        if outcomes == {"silent"}:
            smallest = min(min(p.pings) for p in tunnels)
            checks.append(
                skip(
                    name,
                    f"not measured: no ping through {interface} to {peer} came back, not even "
                    f"of {smallest} bytes (pings blocked there, or the tunnel carries nothing: "
                    "see the wireguard lines above)",
                )
            )
            continue
        high = max(p.high for p in tunnels)
        evidence = "; ".join(_seen(p) for p in (*tunnels, *([underlay] if underlay else [])))
        path = _underlay_path(underlay)
        own = _own_mtu(live, underlay.address) if underlay else None
        outer = high + WG_OVERHEAD[underlay.version] if underlay else 0
        if outcomes & {"hole", "learnt"} and own is not None and own < outer:
            # This host's own link is too small: tunnel.mtu (below) names that cause.
            checks.append(
                skip(
                    name,
                    f"not judged: WireGuard's {outer}-byte packets exceed this host's own "
                    f"link towards {underlay.address if underlay else ''} (mtu {own}); "
                    "tunnel.mtu names it",
                )
            )
            continue
        if "hole" in outcomes:
            largest = min(p.largest_passed or 0 for p in tunnels if _outcome(p) == "hole")
            mtu = _mtu_to_set(tunnels, underlay, high)
            carries = f"; the path to its endpoint carries {path} bytes" if path else ""
            checks.append(
                fail(
                    name,
                    f"MTU black hole on the way to {peer}: packets through {interface} larger "
                    f"than {largest} bytes vanish and nothing tells the sender (no ICMP "
                    f"'fragmentation needed' comes back, or fragments are dropped); the "
                    f"largest that passes is {largest} bytes, the tunnel's MTU is {high}"
                    f"{carries}, so BGP stalls on its first large UPDATE and big packets hang",
                    evidence,
                    _fix(interface, mtu, tunnel.link),
                )
            )
        else:
            checks.append(_passes(live, tunnel.link, interface, peer, high, found, evidence))
    return checks
